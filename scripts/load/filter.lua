-- wrk script: POST /v1/filter with bodies rotated from the file given after `--` (see common.lua).
ENDPOINT = "/v1/filter"
ITEMS = 1000  -- decisions per request (candidates per filter request)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
