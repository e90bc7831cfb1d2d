-- Never finishes: the runner's lua_request_timeout must stop it.
describe("timeout", function()
  it("loops", function()
    while true do end
  end)
end)
