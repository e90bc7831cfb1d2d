for _, t in ipairs({0, 1, 86399, 86400, 951782400, 1290079655, 1700000000, 2147483647, 2147483648, 4102444800, 253402300799, 1.9}) do
  ngx.say(t, " ", ngx.http_time(t), " | ", ngx.cookie_time(t))
end
for _, s in ipairs({
  "Thu, 18 Nov 2010 11:27:35 GMT", "Thursday, 18-Nov-10 11:27:35 GMT", "Thu Nov 18 11:27:35 2010",
  "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
  "Thu, 01 Jan 1970 00:00:00 GMT", "Wed, 31 Dec 1969 23:59:59 GMT", "Tue, 29 Feb 2000 12:00:00 GMT",
  "Thu, 29 Feb 2001 12:00:00 GMT", "Mon, 29 Feb 1900 00:00:00 GMT", "Fri, 31 Apr 2020 00:00:00 GMT",
  "Fri, 30 Apr 2020 24:00:00 GMT", "Fri, 30 Apr 2020 23:60:00 GMT", "Fri, 30 Apr 2020 23:59:60 GMT",
  "Fri, 30 Xyz 2020 23:59:59 GMT", "Fri, 30 Apr 2020 23:59:59", "Fri, 30 Apr 2020 23:59:59 UTC",
  "Fri,30 Apr 2020 23:59:59 GMT", "Fri,    30 Apr 2020 23:59:59 GMT", "30 Apr 2020 23:59:59 GMT",
  "Friday, 30-Apr-69 23:59:59 GMT", "Friday, 30-Apr-70 23:59:59 GMT", "Fri Apr 30 23:59:59 2020 GMT",
  "Fri Apr 3 23:59:59 2020", "", "garbage", "Fri, 30 Apr 2020 23:59:59 GMTxyz",
  "Mon, 01 Jan 2038 00:00:00 GMT", "Sat, 01 Jan 9999 00:00:00 GMT", "Jun", "Tue, 10 Jun 2003 04:00:00 GMT",
  "Tue, 10 Jul 2003 04:00:00 GMT", "Tue, 10 Mar 2003 04:00:00 GMT", "Tue, 10 May 2003 04:00:00 GMT",
  "Tue, 10 Aug 2003 04:00:00 GMT", "Tue, 10 Sep 2003 04:00:00 GMT", "Tue, 10 Oct 2003 04:00:00 GMT",
  "Tue, 10 Dec 2003 04:00:00 GMT", "Tue, 10 Feb 2003 04:00:00 GMT", "Tue, 10 Jan 2003 04:00:00 GMT"}) do
  ngx.say("[", s, "] ", ngx.parse_http_time(s))
end
ngx.say(type(ngx.now()), " ", type(ngx.time()), " ", math.floor(ngx.now()) == ngx.time() or math.floor(ngx.now()) == ngx.time() - 1)
ngx.say(#ngx.today(), " ", #ngx.localtime(), " ", #ngx.utctime())
ngx.say(ngx.today():match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil, " ", ngx.utctime():match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$") ~= nil)
ngx.say(ngx.parse_http_time(ngx.http_time(ngx.time())) == ngx.time())
ngx.update_time()
ngx.say(ngx.update_time())
