"""E-tickets and check-in at the door (API.md § E-tickets and check-in) → ticket_svc."""

from gateway.etickets import SVG, ticket_qr
from gateway.routes.base import Route, Who
from messages.contracts import door as d

TAG = "E-tickets and check-in"

ROUTES = [
    Route("GET", "/tickets/{id}", d.GetTicket, Who.signed_in,
          "A ticket with its signed check-in code (null once refunded) and its show (owner "
          "or clerk+)", TAG, response=d.ETicket),
    Route("GET", "/tickets/{id}/qr.svg", d.GetTicket, Who.signed_in,
          "The ticket's check-in code as a QR code, image/svg+xml (owner or clerk+); 409 "
          "`ticket_refunded` once refunded", TAG, extra={"render": ticket_qr,
                                                           "content_type": SVG,
                                                           "conflict": True}),
    Route("POST", "/tickets/{id}/reissue", d.ReissueCode, Who.signed_in,
          "A new check-in code for a sold ticket, one shared or lost (owner or clerk+): the "
          "old code no longer admits", TAG, response=d.ETicket,
          rules="409 `ticket_refunded`; 409 `conflict` once checked in or once the show has "
                "ended."),
    Route("POST", "/checkins", d.Checkin, Who.clerk,
          "Check a ticket in at the door by its code: admitted once", TAG, body=d.CheckinBody,
          response=d.CheckinResult,
          rules="A code that is not TTMS's (bad signature, garbage) is 422 `invalid_code`. "
                "409 `already_checked_in` (the first check-in's time in `errors[0].msg`), "
                "409 `ticket_refunded`, 409 `wrong_show` (when `schedule_id` names another "
                "show), 409 `checkin_closed` outside the door window (from "
                "`TTMS_CHECKIN_OPENS_MINUTES` before the show until it ends)."),
    Route("POST", "/checkins/batch", d.CheckinBatch, Who.clerk,
          "Upload scans a door device made offline; the first scan of a code wins", TAG,
          body=d.CheckinBatchBody, response=d.CheckinBatchResult),
    Route("GET", "/schedules/{id}/checkin-list", d.GetCheckinList, Who.clerk,
          "What a door device needs to admit a show's tickets offline: the public key, the "
          "door window, the refunded, checked-in and reissued tickets", TAG,
          response=d.CheckinList),
]
