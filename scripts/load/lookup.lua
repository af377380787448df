-- wrk script: POST /v1/lookup with bodies rotated from the file given after `--` (see common.lua).
ENDPOINT = "/v1/lookup"
ITEMS = 1  -- decisions per request (one lookup; objects returned vary)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
