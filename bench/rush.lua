-- The on-sale rush (after the original's JMeter plan): every loop holds one contested seat;
-- a winner pays, then refunds each ticket. wrk gives no per-connection state, so follow-ups
-- are derived from the answers themselves: a 201 "held" reservation queues its payment, a
-- 200 "paid" one queues a refund per ticket, each with its owner's token (by user_id), and
-- queued follow-ups go out before any new hold.
-- Globals set by bench/__main__.py before this file: TOKENS (list), TOKEN_OF (user id →
-- token), SCHEDULE, SEATS (list of {row, col}), id (thread number), and KEYED (a run stamp)
-- when every hold and payment carries an Idempotency-Key; BEST (a show id) for best-available
-- holds of two seats together on that show instead; CANCEL (true) when a winner cancels its
-- hold (DELETE, answered 204) instead of paying: the original system's buy/return cycle.

counts = {}
local queue, next_token, next_seat, sent = {}, 0, 0, 0

local function headers_for(token)
  local headers = { ["Authorization"] = "Bearer " .. token,
                    ["Content-Type"] = "application/json" }
  if KEYED ~= nil then
    sent = sent + 1
    headers["Idempotency-Key"] = KEYED .. "-" .. (id or 0) .. "-" .. sent
  end
  return headers
end

function init(args)
  next_token = (id or 0) * 7919
  next_seat = (id or 0) * 3
end

function request()
  local item = table.remove(queue, 1)
  if item ~= nil then
    if item.method == "DELETE" then
      return wrk.format("DELETE", item.path, headers_for(item.token))
    end
    return wrk.format("POST", item.path, headers_for(item.token), "{}")
  end
  next_token = next_token % #TOKENS + 1
  next_seat = next_seat % #SEATS + 1
  local seat = SEATS[next_seat]
  if BEST ~= nil then  -- the best scenario: two seats together, ticket_svc picks them
    return wrk.format("POST", "/api/v1/reservations", headers_for(TOKENS[next_token]),
      string.format('{"schedule_id":%d,"quantity":2,"together":true}', BEST))
  end
  return wrk.format("POST", "/api/v1/reservations", headers_for(TOKENS[next_token]),
    string.format('{"schedule_id":%d,"seats":[{"row":%d,"col":%d}]}', SCHEDULE, seat[1], seat[2]))
end

function response(status, headers, body)
  count_answer(status, body)  -- bench/common.lua
  if status ~= 200 and status ~= 201 then return end
  local user = tonumber(body:match('"user_id":(%d+)'))
  local token = user and TOKEN_OF[user]
  if token == nil then return end
  if status == 201 and body:find('"status":"held"', 1, true) then
    local reservation = body:match('^{"id":(%d+)')
    if CANCEL then
      table.insert(queue, { token = token, method = "DELETE",
                            path = "/api/v1/reservations/" .. reservation })
    else
      table.insert(queue, { token = token,
                            path = "/api/v1/reservations/" .. reservation .. "/pay" })
    end
  elseif body:find('"status":"paid"', 1, true) then
    local tickets = body:match('"tickets":%[(.*)%]') or ""
    for ticket in tickets:gmatch('{"id":(%d+)') do
      table.insert(queue, { token = token, path = "/api/v1/tickets/" .. ticket .. "/refund" })
    end
  end
end
