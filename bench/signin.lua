-- A sign-in storm: every loop signs in as the next of the bench's customers (round robin,
-- each thread from its own place). Answers are counted by status and code (common.lua): 200,
-- and under a storm beyond the hashing capacity fast 503 service_unavailable; never a 504.
-- Globals set by bench/__main__.py before this file: USERNAMES (list), PASSWORD, id (thread).

local next_user = 0

function init(args)
  next_user = (id or 0) * 7919
end

function request()
  next_user = next_user % #USERNAMES + 1
  return wrk.format("POST", "/api/v1/auth/login", { ["Content-Type"] = "application/json" },
    string.format('{"username":"%s","password":"%s"}', USERNAMES[next_user], PASSWORD))
end
