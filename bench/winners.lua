-- Winners only (issue 17, part 2): every hold is of a free seat, then its payment, then a
-- refund of its ticket, again and again: what a winning hold → pay → refund cycle costs, with
-- no refusal in the mix. Each wrk thread owns its own seats of a show of its own (seat i is
-- thread i % THREADS's) and holds only seats it knows are free: those it has not held yet and
-- those whose refund it has seen answered, oldest first, so a seat is held again only after
-- its refund. A thread has more seats than connections, so its free list never runs dry
-- (a cycle lost to an error takes its seat out of the list for the rest of the run).
-- Globals set by bench/__main__.py before this file: TOKENS (list), TOKEN_OF (user id →
-- token), SCHEDULE, SEATS (list of {row, col}), THREADS, and id (thread number) from
-- bench/common.lua. Answers are counted by what they answer ("hold 201", "pay 200",
-- "refund 200"; a refusal by its status and code, as elsewhere).

counts = {}
local queue, free, mine, next_token, next_mine = {}, {}, {}, 0, 0

local function headers_for(token)
  return { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

function init(args)
  next_token = (id or 0) * 7919
  for i, seat in ipairs(SEATS) do
    if (i - 1) % THREADS == (id or 0) then
      table.insert(mine, seat)
      table.insert(free, seat)
    end
  end
end

function request()
  local item = table.remove(queue, 1)
  if item ~= nil then
    return wrk.format("POST", item.path, headers_for(item.token), "{}")
  end
  local seat = table.remove(free, 1)
  if seat == nil then  -- every seat in a cycle or lost: a hold that will be refused, counted
    next_mine = next_mine % #mine + 1
    seat = mine[next_mine]
  end
  next_token = next_token % #TOKENS + 1
  return wrk.format("POST", "/api/v1/reservations", headers_for(TOKENS[next_token]),
    string.format('{"schedule_id":%d,"seats":[{"row":%d,"col":%d}]}', SCHEDULE, seat[1], seat[2]))
end

local function count(key)
  counts[key] = (counts[key] or 0) + 1
end

function response(status, headers, body)
  if status ~= 200 and status ~= 201 then
    count_answer(status, body)  -- bench/common.lua
    return
  end
  local user = tonumber(body:match('"user_id":(%d+)'))
  local token = user and TOKEN_OF[user]
  if status == 201 and body:find('"status":"held"', 1, true) and token then
    count("hold 201")
    local reservation = body:match('^{"id":(%d+)')
    table.insert(queue, { token = token,
                          path = "/api/v1/reservations/" .. reservation .. "/pay" })
  elseif status == 200 and body:find('"status":"paid"', 1, true) and token then
    count("pay 200")
    local tickets = body:match('"tickets":%[(.*)%]') or ""
    for ticket in tickets:gmatch('{"id":(%d+)') do
      table.insert(queue, { token = token, path = "/api/v1/tickets/" .. ticket .. "/refund" })
    end
  elseif status == 200 and body:find('"status":"refunded"', 1, true) then
    count("refund 200")
    local row, col = body:match('"row":(%d+),"col":(%d+)')
    if row then table.insert(free, { tonumber(row), tonumber(col) }) end
  else
    count(status .. " other")
  end
end
