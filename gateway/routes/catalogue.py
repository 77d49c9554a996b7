"""Studios and seat maps (→ studio_svc), plays and schedules (→ play_svc): API.md's catalogue."""

from gateway.routes.base import Route, Who
from messages.contracts import play as p
from messages.contracts import studio as s
from messages.contracts.base import Page

STUDIOS = "Studios and seat maps"
PLAYS = "Plays and schedules"
# What a show's time must meet, whether it is scheduled or moved (one check in play_svc).
IN_RUN = "must fall inside the play's run"
NO_OVERLAP = "overlap another scheduled show in the studio (409 `schedule_conflict`)"

ROUTES = [
    Route("POST", "/studios", s.CreateStudio, Who.manager,
          "Create a studio; every place starts as a `seat`", STUDIOS,
          body=s.CreateStudioBody, response=s.Studio, status=201),
    Route("GET", "/studios", s.ListStudios, Who.signed_in, "List studios (`q`: name contains)",
          STUDIOS, query=s.StudioQuery, response=Page[s.Studio]),
    Route("GET", "/studios/{id}", s.GetStudio, Who.signed_in, "A studio", STUDIOS,
          response=s.Studio),
    Route("PATCH", "/studios/{id}", s.UpdateStudio, Who.manager,
          "Rename, describe or resize a studio (resize: 409 while it has upcoming shows)",
          STUDIOS, body=s.UpdateStudioBody, response=s.Studio),
    Route("DELETE", "/studios/{id}", s.DeleteStudio, Who.manager,
          "Delete a studio (409 while it has upcoming shows)", STUDIOS, status=204),
    Route("GET", "/studios/{id}/seats", s.GetSeatMap, Who.signed_in, "A studio's seat map",
          STUDIOS, response=s.SeatMap),
    Route("PATCH", "/studios/{id}/seats", s.EditSeats, Who.manager,
          "Set the kind of some places (`seat`, `aisle`, `broken`)", STUDIOS,
          body=s.EditSeatsBody, response=s.SeatMap,
          rules="Every place must lie inside the studio (row ≤ `rows`, col ≤ `cols`): "
                "422 naming each one outside."),

    Route("POST", "/plays", p.CreatePlay, Who.manager, "Create a play", PLAYS,
          body=p.CreatePlayBody, response=p.Play, status=201,
          links=(("GET /box-office/plays/{id}", "$response.body#/id"),),
          rules="`starts_on` must not be after `ends_on` (422)."),
    Route("GET", "/plays", p.ListPlays, Who.anyone,
          "List plays (`q`: name contains, `kind`)", PLAYS, query=p.PlayQuery,
          response=Page[p.Play]),
    Route("GET", "/plays/{id}", p.GetPlay, Who.anyone, "A play", PLAYS, response=p.Play),
    Route("PATCH", "/plays/{id}", p.UpdatePlay, Who.manager, "Change a play", PLAYS,
          body=p.UpdatePlayBody, response=p.Play,
          rules="After the change `starts_on` must not be after `ends_on`, the one sent "
                "compared with the other as stored (422)."),
    Route("DELETE", "/plays/{id}", p.DeletePlay, Who.manager,
          "Delete a play and cancel its upcoming shows (409 while one has tickets sold)",
          PLAYS, status=204),
    Route("POST", "/schedules", p.CreateSchedule, Who.manager,
          "Schedule a show (409 `schedule_conflict` if it overlaps another in the studio)",
          PLAYS, body=p.CreateScheduleBody, response=p.Schedule, status=201,
          links=(("POST /reservations", {"schedule_id": "$response.body#/id"}),),
          rules=f"`starts_at` {IN_RUN}, `starts_on` to `ends_on` (422); the show (`starts_at` "
                f"+ the play's `duration_minutes`) must not {NO_OVERLAP}."),
    Route("GET", "/schedules", p.ListSchedules, Who.anyone,
          "List shows (`play_id`, `studio_id`, `from` ≤ starts_at < `to`, `status`)", PLAYS,
          query=p.ScheduleQuery, response=Page[p.Schedule],
          rules="`from` and `to` are RFC 3339 timestamps with an offset; `from` at or after "
                "`to` selects nothing (an empty page, not an error)."),
    Route("GET", "/schedules/{id}", p.GetSchedule, Who.anyone, "A show", PLAYS,
          response=p.Schedule),
    Route("PATCH", "/schedules/{id}", p.UpdateSchedule, Who.manager,
          "Move or re-price a show (409 once tickets are held or sold)", PLAYS,
          body=p.UpdateScheduleBody, response=p.Schedule,
          rules=f"A new `starts_at` {IN_RUN} (422) and not {NO_OVERLAP}."),
    Route("DELETE", "/schedules/{id}", p.CancelSchedule, Who.manager,
          "Cancel a show: its holds are released and its sold tickets refunded", PLAYS,
          status=204),
]
