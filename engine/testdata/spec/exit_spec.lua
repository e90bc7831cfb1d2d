-- Ends the runner's own request: the runner must say the file aborted.
describe("exit", function()
  it("passes first", function()
    assert.truthy(true)
  end)

  it("then exits the request", function()
    ngx.exit(200)
  end)
end)
