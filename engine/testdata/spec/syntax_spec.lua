describe("broken", function()
  it("never runs", function()
    local = 1
  end)
end)
