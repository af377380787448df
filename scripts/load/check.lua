-- wrk script: POST /v1/check with bodies rotated from the file given after `--` (see common.lua).
ENDPOINT = "/v1/check"
ITEMS = 1  -- decisions per request
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
