#!/usr/bin/env bash
# `make bench`: luaserve side by side with OpenResty and a plain-Go ceiling,
# all three on one real memcached, loaded in turn by wrk on this machine.
#
#   scripts/bench.sh                                   # full run, ~12 min
#   ROUNDS=1 DURATION=3s CONC= scripts/bench.sh        # quick look
#
# Environment (defaults in brackets):
#   ROUNDS [3]         rounds; each round loads every server once (A B C A B C …)
#   DURATION [10s]     wrk -d per run
#   THREADS [2]        wrk -t
#   CONNS [64]         wrk -c for every route
#   CONC ["256 1024"]  extra wrk -c levels for the seed route ("" skips them)
#   WARMUP [2s]        one unmeasured run per server and route first ("" skips)
#   SERVERS ["luaserve openresty ceiling"], ROUTES ["hello seed read json"]
#   SEED_POOL [1]      also run the ceiling's /test_b1_pool (the seed route over a
#                      connection checked out per request, as resty.bmemcached
#                      does) at -c CONNS: row "ceiling-pool"; 0 skips it
#   READ_MODULE [rmc]  luaserve's read route: rmc (resty.memcached) or bmem
#                      (resty.bmemcached)
#   PROFILE            file: luaserve writes a CPU profile of its whole run there
#   LUASERVE_ENV       extra environment for luaserve, e.g. "GOGC=400 GOMEMLIMIT=1GiB"
#   KEEP=1             keep the temp prefix (configs, logs, raw wrk output)
#
# The markdown table is the last thing printed on stdout; progress goes to
# stderr. Nothing is installed: a missing tool stops the script with the
# apt-get line that provides it.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
CONC=${CONC-256 1024}
WARMUP=${WARMUP-2s}
SERVERS=${SERVERS:-luaserve openresty ceiling}
ROUTES=${ROUTES:-hello seed read json}
READ_MODULE=${READ_MODULE:-rmc}
SEED_POOL=${SEED_POOL:-1}
PROFILE=${PROFILE:-}
LUASERVE_ENV=${LUASERVE_ENV:-}
KEEP=${KEEP:-0}

NGINX=/usr/sbin/nginx
NGINX_MODULES=/usr/lib/nginx/modules
MEMCACHED=/usr/bin/memcached
PRELOAD_KEYS=10000
VALUE_SIZE=1024

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/scripts/bench

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

case $READ_MODULE in rmc | bmem) ;; *) die "READ_MODULE must be rmc or bmem, not $READ_MODULE" ;; esac
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not $ROUNDS"

# --- what this machine lacks --------------------------------------------------
missing=()
[[ -x $NGINX && -f $NGINX_MODULES/ngx_http_lua_module.so && -f $NGINX_MODULES/ndk_http_module.so ]] || missing+=(nginx-extras)
[[ -f /usr/share/lua/5.1/nginx/memcached.lua ]] || missing+=(lua-nginx-memcached)
[[ -x $MEMCACHED ]] || missing+=(memcached)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
	log "bench: missing tools; install them with:"
	log "  apt-get install ${missing[*]}"
	exit 1
fi
command -v go >/dev/null || die "go is not on PATH (https://go.dev/dl/)"

# --- build ---------------------------------------------------------------------
log "bench: building bin/luaserve and bin/bench-ceiling"
go build -o bin/luaserve ./cmd/luaserve
go build -o bin/bench-ceiling ./scripts/bench/ceiling
LUASERVE=$ROOT/bin/luaserve
CEILING=$ROOT/bin/bench-ceiling

# --- temp prefix, processes, cleanup ---------------------------------------------
# The OpenResty workers run as nobody: everything they read must be
# world-readable, and what they write (logs, temp) world-writable.
TMP=$(mktemp -d /tmp/luaserve-bench.XXXXXX)
chmod 755 "$TMP"
declare -A PID=()   # server (and memcached) → pid of its main process
SAMPLER=

stop_pid() { # pid signal: signal, then wait up to 10 s, then KILL
	local pid=$1 sig=$2 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	[[ -n $SAMPLER ]] && stop_pid "$SAMPLER" TERM
	# SIGTERM: nginx's fast shutdown; luaserve stops and writes its profile.
	for s in luaserve openresty ceiling memcached; do
		[[ -n ${PID[$s]:-} ]] && stop_pid "${PID[$s]}" TERM
	done
	if [[ $KEEP == 1 ]]; then
		log "bench: kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r MEMC_PORT LUASERVE_PORT OPENRESTY_PORT CEILING_PORT < <("$CEILING" -free-ports 4)
declare -A PORT=([luaserve]=$LUASERVE_PORT [openresty]=$OPENRESTY_PORT [ceiling]=$CEILING_PORT)

wait_port() { # name port: until something accepts on 127.0.0.1:port (10 s)
	local i
	for ((i = 0; i < 100; i++)); do
		if (: </dev/tcp/127.0.0.1/"$2") 2>/dev/null; then return 0; fi
		kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited at startup (see $TMP/$1.out)$(tail -5 "$TMP/$1.out" | sed 's/^/\n  /')"
		sleep 0.1
	done
	die "$1 did not listen on 127.0.0.1:$2 within 10 s"
}

# --- memcached, shared by all three servers ----------------------------------------
# -c: OpenResty opens one memcached connection per in-flight request (its
# keepalive pool only caps idle ones), so -c 1024 needs more than the
# default 1024 connections.
memc_args=(-l 127.0.0.1 -p "$MEMC_PORT" -U 0 -m 256 -c 8192)
((EUID == 0)) && memc_args=(-u nobody "${memc_args[@]}")
"$MEMCACHED" "${memc_args[@]}" >"$TMP/memcached.out" 2>&1 &
PID[memcached]=$!
wait_port memcached "$MEMC_PORT"
"$CEILING" -memcached "127.0.0.1:$MEMC_PORT" -preload "$PRELOAD_KEYS" -value-size "$VALUE_SIZE" ||
	die "preloading $PRELOAD_KEYS keys failed"

# --- the servers ---------------------------------------------------------------------
render() { # server: copy its prefix into $TMP and fill in the ports
	local dst=$TMP/$1
	mkdir -p "$dst/logs" "$dst/tmp"
	cp -r "$BENCH/$1/conf" "$BENCH/$1/lua" "$dst/"
	find "$dst" -type f \( -name '*.conf' -o -name '*.lua' \) -exec sed -i \
		-e "s/@PORT@/${PORT[$1]}/g" -e "s/@MEMC_PORT@/$MEMC_PORT/g" -e "s/@READ_MODULE@/$READ_MODULE/g" {} +
	chmod -R a+rX "$dst"
	chmod 1777 "$dst/logs" "$dst/tmp"
}

start_server() {
	case $1 in
	luaserve)
		render luaserve
		local envs=()
		read -r -a envs <<<"$LUASERVE_ENV"
		[[ -n $PROFILE ]] && envs+=("LUASERVE_CPUPROFILE=$PROFILE")
		env ${envs[@]+"${envs[@]}"} "$LUASERVE" -p "$TMP/luaserve" -c conf/nginx.conf >"$TMP/luaserve.out" 2>&1 &
		;;
	openresty)
		render openresty
		"$NGINX" -p "$TMP/openresty/" -c conf/nginx.conf -g 'daemon off; master_process on;' >"$TMP/openresty.out" 2>&1 &
		;;
	ceiling)
		"$CEILING" -listen "127.0.0.1:${PORT[ceiling]}" -memcached "127.0.0.1:$MEMC_PORT" >"$TMP/ceiling.out" 2>&1 &
		;;
	*) die "unknown server $1" ;;
	esac
	PID[$1]=$!
	wait_port "$1" "${PORT[$1]}"
}

for s in $SERVERS; do start_server "$s"; done

# --- every server answers every route the same way before anything is timed ----------
expect() { # server what want got
	[[ $4 == *"$3"* ]] || die "$1: $2: want a body containing '$3', got: $(head -c 300 <<<"$4")"
}
check_server() {
	local s=$1 url=http://127.0.0.1:${PORT[$1]} body value path
	body=$(curl -fsS --max-time 5 "$url/hello") || die "$s: GET /hello failed"
	[[ $body == hello ]] || die "$s: /hello answered '$body'"
	body=$(curl -fsS --max-time 5 "$url/test_b1?key=bench_check&value=seed7") || die "$s: GET /test_b1 failed"
	expect "$s" /test_b1 '"value":"seed7"' "$body"
	[[ $s == openresty ]] || expect "$s" /test_b1 '"status":"No error"' "$body"
	if [[ $s == ceiling ]]; then
		body=$(curl -fsS --max-time 5 "$url/test_b1_pool?key=bench_check&value=seed8") || die "$s: GET /test_b1_pool failed"
		expect "$s" /test_b1_pool '"value":"seed8"' "$body"
	fi
	local reads=(/read)
	# Both of luaserve's read variants, whichever READ_MODULE loads.
	[[ $s == luaserve ]] && reads+=(/read_rmc /read_bmem)
	for path in "${reads[@]}"; do
		value=$(curl -fsS --max-time 5 "$url$path?k=$((PRELOAD_KEYS - 1))") || die "$s: GET $path failed"
		((${#value} == VALUE_SIZE)) && [[ $value == "$((PRELOAD_KEYS - 1))"* ]] ||
			die "$s: $path?k=$((PRELOAD_KEYS - 1)) answered ${#value} bytes: $(head -c 40 <<<"$value")…"
		[[ $(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$url$path?k=$PRELOAD_KEYS") == 404 ]] ||
			die "$s: $path?k=$PRELOAD_KEYS (never stored) is not a 404"
	done
	body=$(curl -fsS --max-time 5 -H 'Content-Type: application/json' --data-binary "@$BENCH/wrk/body.json" "$url/json") ||
		die "$s: POST /json failed"
	expect "$s" /json '"count":42' "$body"
	expect "$s" /json '"processed":true' "$body"
	expect "$s" /json '"sku":"SKU-01185"' "$body"
}
for s in $SERVERS; do check_server "$s"; done

# --- peak RSS ------------------------------------------------------------------------------
# Sum of VmRSS over the server's process and its children (nginx's workers),
# every 200 ms, with bash builtins only so the sampler costs next to nothing.
RSS_KB=0
rss_kb() { # pid: RSS_KB = KB of pid + its children
	local pid=$1 k v _ c kids=()
	RSS_KB=0
	read -r -a kids 2>/dev/null <"/proc/$pid/task/$pid/children" || true
	for c in "$pid" "${kids[@]}"; do
		while read -r k v _; do
			if [[ $k == VmRSS: ]]; then
				RSS_KB=$((RSS_KB + v))
				break
			fi
		done 2>/dev/null <"/proc/$c/status" || true
	done
}
sample_rss() { # pid file: write the running peak to file until killed
	local pid=$1 file=$2 peak=0
	trap 'exit 0' TERM
	while :; do
		rss_kb "$pid"
		if ((RSS_KB > peak)); then
			peak=$RSS_KB
			echo "$peak" >"$file"
		fi
		sleep 0.2
	done
}

# --- noise ------------------------------------------------------------------------------------
# How much CPU other processes took during a run, in clock ticks: the
# machine's busy time minus what the server (with its children), memcached
# and wrk used. Interrupt time counts as busy: this kernel also charges the
# softirq work of loopback TCP to the process it ran in.
CPU_TICKS=0 CPU_BUSY=0 CPU_TOTAL=0
cpu_machine() { # → CPU_BUSY, CPU_TOTAL
	local _ u n sy i w irq sirq st
	read -r _ u n sy i w irq sirq st _ </proc/stat
	CPU_BUSY=$((u + n + sy + irq + sirq + st))
	CPU_TOTAL=$((CPU_BUSY + i + w))
}
cpu_proc() { # pid [with-children] → CPU_TICKS += utime+stime (of live children too)
	local line f c kids=()
	read -r line 2>/dev/null </proc/"$1"/stat || return 0
	read -r -a f <<<"${line##*) }"
	CPU_TICKS=$((CPU_TICKS + f[11] + f[12]))
	[[ ${2:-} == with-children ]] || return 0
	read -r -a kids 2>/dev/null <"/proc/$1/task/$1/children" || true
	for c in "${kids[@]}"; do cpu_proc "$c"; done
}
CLK_TCK=$(getconf CLK_TCK)
SERVER_TICKS=0
cpu_ours() { # server-pid → SERVER_TICKS: the server's; CPU_TICKS: with memcached's and the finished children of this shell (wrk)
	local line f
	CPU_TICKS=0
	cpu_proc "$1" with-children
	SERVER_TICKS=$CPU_TICKS
	cpu_proc "${PID[memcached]}"
	read -r line </proc/$$/stat
	read -r -a f <<<"${line##*) }"
	CPU_TICKS=$((CPU_TICKS + f[13] + f[14]))
}

# --- load -------------------------------------------------------------------------------------
RESULTS=$TMP/results.tsv
: >"$RESULTS"
path_of() { case $1 in hello) echo /hello ;; seed) echo /test_b1 ;; read) echo /read ;; json) echo /json ;; esac; }
# ceiling-pool is a second set of routes on the ceiling's process.
proc_of() { [[ $1 == ceiling-pool ]] && echo ceiling || echo "$1"; }

run_wrk() { # server route conns round duration → appends one result line (round "warmup" is not kept)
	local s=$1 route=$2 c=$3 round=$4 d=$5 out rssf line p seedpath=/test_b1
	p=$(proc_of "$s")
	[[ $s == ceiling-pool ]] && seedpath=/test_b1_pool
	out=$TMP/wrk.$s.$route.c$c.${round%%/*}.txt
	rssf=$TMP/rss.$s.$route.c$c.${round%%/*}
	echo 0 >"$rssf"
	local ours0 busy0 total0 server0 others
	cpu_ours "${PID[$p]}"
	cpu_machine
	ours0=$CPU_TICKS busy0=$CPU_BUSY total0=$CPU_TOTAL server0=$SERVER_TICKS
	sample_rss "${PID[$p]}" "$rssf" &
	SAMPLER=$!
	BENCH_MODE=$route BENCH_BODY=$BENCH/wrk/body.json BENCH_SEED_PATH=$seedpath \
		wrk "-t$THREADS" "-c$c" "-d$d" --latency -s "$BENCH/wrk/bench.lua" \
		"http://127.0.0.1:${PORT[$p]}$(path_of "$route")" >"$out" 2>&1 || true
	stop_pid "$SAMPLER" TERM
	SAMPLER=
	cpu_ours "${PID[$p]}"
	cpu_machine
	# Percent of the machine's CPU (all cores) that other processes used.
	others=$(((CPU_BUSY - busy0 - (CPU_TICKS - ours0)) * 100 / (CPU_TOTAL - total0 > 0 ? CPU_TOTAL - total0 : 1)))
	((others < 0)) && others=0
	kill -0 "${PID[$p]}" 2>/dev/null || die "$p died during $route c$c (see $TMP/$p.out)"
	line=$(grep '^WRKRESULT' "$out" || true)
	[[ -n $line ]] || die "wrk gave no result for $s $route c$c: $(tail -5 "$out")"
	# WRKRESULT requests= duration_us= rps= p50_us= p99_us= connect= read= write= timeout= status=
	line=$(awk -v s="$s" -v r="$route" -v c="$c" -v n="$round" -v rss="$(cat "$rssf")" -v others="$others" \
		-v cpu_s="$(((SERVER_TICKS - server0)))" -v hz="$CLK_TCK" '
		{ for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
		END {
			err = f["connect"] + f["read"] + f["write"] + f["timeout"] + f["status"]
			cpu = f["requests"] > 0 ? cpu_s * 1e6 / hz / f["requests"] : 0
			printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%.1f\n", r, c, s, n, f["rps"], f["p50_us"], f["p99_us"], err, rss, f["requests"], others, cpu
		}' <<<"$line")
	IFS=$'\t' read -r _ _ _ _ rps p50 p99 err rss _ _ cpu <<<"$line"
	log "$(printf '  %-6s c%-5s %-12s %-7s %10s req/s  p50 %6.2f ms  p99 %7.2f ms  errors %-6s RSS %6.1f MB  CPU %5s µs/req  others\x27 CPU %3s%%' \
		"$route" "$c" "$s" "$round" "$rps" "$(awk "BEGIN{print $p50/1000}")" "$(awk "BEGIN{print $p99/1000}")" "$err" "$(awk "BEGIN{print $rss/1024}")" "$cpu" "$others")"
	[[ $round == warmup ]] || printf '%s\n' "$line" >>"$RESULTS"
	sleep 1 # let the closed connections drain before the next server's run
}

START=$(date -u +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "bench: $ROUNDS round(s) of wrk -t$THREADS -c$CONNS -d$DURATION per route and server; servers: $SERVERS"
for route in $ROUTES; do
	servers=$SERVERS
	[[ $route == seed && $SEED_POOL == 1 && " $SERVERS " == *" ceiling "* ]] && servers+=" ceiling-pool"
	if [[ -n $WARMUP ]]; then
		for s in $servers; do run_wrk "$s" "$route" "$CONNS" warmup "$WARMUP"; done
	fi
	for ((r = 1; r <= ROUNDS; r++)); do
		for s in $servers; do run_wrk "$s" "$route" "$CONNS" "$r/$ROUNDS" "$DURATION"; done
	done
done
if [[ " $ROUTES " == *" seed "* ]]; then
	for c in $CONC; do
		for ((r = 1; r <= ROUNDS; r++)); do
			for s in $SERVERS; do run_wrk "$s" seed "$c" "$r/$ROUNDS" "$DURATION"; done
		done
	done
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(($(date -u +%s) - START))

# --- report ------------------------------------------------------------------------------------
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
LUA_MODULE_VERSION=$(dpkg-query -W -f '${Version}' libnginx-mod-http-lua 2>/dev/null || echo unknown)
COMMIT=$(git describe --always --dirty 2>/dev/null || echo unknown)
CMD="make bench"
[[ $ROUNDS != 3 || $DURATION != 10s ]] && CMD="ROUNDS=$ROUNDS DURATION=$DURATION make bench"
READ_NAME=$([[ $READ_MODULE == rmc ]] && echo resty.memcached || echo resty.bmemcached)

# Goals first, then the block for the README (header + table), last.
awk -F'\t' -v conns="$CONNS" -v table="$TMP/table.md" '
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function span(list,   a, n, i, lo, hi) {
		n = split(list, a, " "); lo = hi = a[1] + 0
		for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
		return n < 2 ? "–" : sprintf("%.0f–%.0f", lo, hi)
	}
	function ms(us) { return us < 10000 ? sprintf("%.2f ms", us / 1000) : sprintf("%.1f ms", us / 1000) }
	function goal(route, c, want, text,   a, b) {
		a = route SUBSEP c SUBSEP "luaserve"; b = route SUBSEP c SUBSEP "openresty"
		if (!(a in mr) || !(b in mr) || mr[b] == 0) return
		printf "- %s: %.2f× — %s\n", text, mr[a] / mr[b], (mr[a] / mr[b] >= want ? "met" : sprintf("NOT met (%.0f%% short of the goal)", (1 - mr[a] / (want * mr[b])) * 100))
	}
	{
		k = $1 SUBSEP $2 SUBSEP $3
		if (!(k in seen)) {
			seen[k] = 1
			if (!($1 in nrow)) { routes[++nr] = $1; nrow[$1] = 0 }
			rows[$1, ++nrow[$1]] = k
		}
		rps[k] = rps[k] " " $5; p50[k] = p50[k] " " $6; p99[k] = p99[k] " " $7; cpu[k] = cpu[k] " " $12
		err[k] += $8; if ($9 + 0 > rss[k]) rss[k] = $9 + 0
	}
	END {
		for (k in seen) { mr[k] = median(rps[k]); m50[k] = median(p50[k]); m99[k] = median(p99[k]) }
		print "| route | wrk -c | server | req/s | req/s range | p50 | p99 | errors | peak RSS | server CPU/req | req/s vs OpenResty |" >table
		print "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" >table
		for (i = 1; i <= nr; i++) {
			route = routes[i]
			# Rows by concurrency, then in the order the servers ran.
			nc = 0
			for (j = 1; j <= nrow[route]; j++) {
				split(rows[route, j], f, SUBSEP)
				if (!((route, f[2]) in hasc)) { hasc[route, f[2]] = 1; cs[++nc] = f[2] }
			}
			for (ci = 1; ci <= nc; ci++) {
				for (j = 1; j <= nrow[route]; j++) {
					k = rows[route, j]; split(k, g, SUBSEP)
					if (g[2] != cs[ci]) continue
					o = g[1] SUBSEP g[2] SUBSEP "openresty"
					ratio = ((o in mr) && mr[o] > 0) ? sprintf("%.2f×", mr[k] / mr[o]) : "–"
					name = g[1] == "seed" ? "seed /test_b1" : "/" g[1]
					printf "| %s | %s | %s | %.0f | %s | %s | %s | %d | %.1f MB | %.1f µs | %s |\n", name, g[2], g[3], mr[k], span(rps[k]), ms(m50[k]), ms(m99[k]), err[k], rss[k] / 1024, median(cpu[k]), ratio >table
				}
			}
		}
		print ""
		print "Goals of issue 8 in this run:"
		L = "luaserve"; O = "openresty"; s = "seed" SUBSEP conns SUBSEP
		goal("seed", conns, 1.5, "seed route req/s ≥ 1.5× OpenResty")
		if ((s L) in mr && (s O) in mr)
			printf "- seed route p99 ≤ OpenResty: %s vs %s — %s\n", ms(m99[s L]), ms(m99[s O]), (m99[s L] <= m99[s O] ? "met" : "NOT met")
		goal("hello", conns, 1.0, "/hello req/s ≥ 1.0× OpenResty")
		goal("read", conns, 1.0, "read route req/s ≥ 1.0× OpenResty")
		goal("json", conns, 1.0, "JSON route req/s ≥ 1.0× OpenResty")
		c = "seed" SUBSEP 1024 SUBSEP L
		if ((c in mr) && (s L) in mr)
			printf "- seed route at -c 1024 within 10%% of -c %s, no errors: %.2f× of -c %s, %d errors — %s\n", conns, mr[c] / mr[s L], conns, err[c], ((mr[c] >= 0.9 * mr[s L] && err[c] == 0) ? "met" : "NOT met")
		if ((s L) in rss && (s O) in rss && rss[s O] > 0)
			printf "- luaserve peak RSS on the seed route ≤ 2× OpenResty: %.1f MB vs %.1f MB (%.2f×) — %s\n", rss[s L] / 1024, rss[s O] / 1024, rss[s L] / rss[s O], (rss[s L] <= 2 * rss[s O] ? "met" : "NOT met")
	}
' "$RESULTS"

cat <<EOF

## Benchmark: luaserve vs OpenResty vs a plain-Go ceiling

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.1f GB RAM", $2/1048576}' /proc/meminfo)
- luaserve $COMMIT built with $(go version | cut -d' ' -f3)${LUASERVE_ENV:+, run with $LUASERVE_ENV}; OpenResty: $NGINX_VERSION + lua-nginx-module $LUA_MODULE_VERSION (Debian nginx-extras, LuaJIT), 2 workers; $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $($MEMCACHED -V)
- Command: \`$CMD\` — wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS round(s) alternating the servers${CONC:+; the seed route also at -c ${CONC// /, -c }}
- The load generator (wrk, $THREADS threads) and memcached run on the same $(nproc) cores as the server under test: every server competes with them equally. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER; CPU taken by other processes during the measured runs: $(awk -F'\t' '{ t += $11; if ($11 > m) m = $11 } END { printf "mean %.0f%%, max %d%% of the machine", NR ? t / NR : 0, m }' "$RESULTS"); run time ${ELAPSED}s
- req/s, p50, p99: median of the rounds (req/s range: the rounds' lowest–highest, a measure of how noisy the machine was); errors: socket errors + HTTP 4xx/5xx (wrk's counts), summed over the rounds; server CPU/req: user + system CPU time of the server's processes per request (median of the rounds; less sensitive to a noisy machine than req/s); peak RSS: the largest sum of VmRSS over the server's processes (OpenResty: master + workers), sampled every 200 ms
- Routes: /hello (ngx.say); seed /test_b1 (set + get + cjson.encode; luaserve: resty.bmemcached as in examples/lua/example.lua, OpenResty: lua-resty-memcached with keepalive); /read (get of one of $PRELOAD_KEYS preloaded ${VALUE_SIZE}-byte values; luaserve: $READ_NAME); /json (POST a 1 KB body, cjson.decode, modify, cjson.encode); ceiling: fasthttp + luaserve/memcached's Client (operations of all requests pipelined onto shared connections), no Lua (its /json uses encoding/json into generic values); ceiling-pool: the seed route on the ceiling over a connection checked out of a memcached.Pool per request, one round trip per operation, as resty.bmemcached and lua-resty-memcached do

EOF
cat "$TMP/table.md"
[[ -z $PROFILE ]] || log "bench: luaserve's CPU profile: $PROFILE (go tool pprof -top -nodecount=30 bin/luaserve $PROFILE)"
