// A printable ticket (owner or clerk+): play, hall, time, row and seat, price, and the QR code
// of its check-in code (GET /tickets/{id}, /tickets/{id}/qr.svg, /schedules/{id}); a new code
// for one shared or lost (POST /tickets/{id}/reissue).
import { get, post, session } from "../api.js";
import { dateTime, money, seatName, t } from "../i18n.js";
import { alertBox, h, loading, twoStepButton } from "../ui.js";

async function qrImage(id) {
  // The picture needs the token, so it is fetched, then shown as a data: URL.
  const response = await fetch(`/api/v1/tickets/${id}/qr.svg`,
    { headers: { Authorization: `Bearer ${session.token}` } });
  if (!response.ok) return null;
  const svg = await response.text();
  return "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(svg)));
}

export function render(main, { params }) {
  const id = params[0];
  const sheet = h("article", { class: "ticket-sheet" });
  main.append(sheet);
  const draw = (reissued = false) => loading(sheet, async () => {
    const ticket = await get(`/tickets/${id}`);
    const show = await get(`/schedules/${ticket.schedule_id}`).catch(() => null);
    return { ticket, show, qr: ticket.code ? await qrImage(id) : null };
  }, ({ ticket, show, qr }) => {
    // A code shared or lost is replaced (two clicks: the old one stops admitting) while the
    // ticket may still go in.
    const box = alertBox();
    const replaceable = ticket.code && !ticket.checked_in_at
      && (!ticket.ends_at || new Date(ticket.ends_at) > new Date());
    sheet.append(
      h("h1", {}, ticket.play_name),
      h("dl", {},
        h("dt", {}, t("col.studio")), h("dd", {}, show ? show.studio_name : "—"),
        h("dt", {}, t("col.when")), h("dd", {}, dateTime(ticket.starts_at)),
        h("dt", {}, t("col.seat")), h("dd", {}, seatName(ticket.row, ticket.col)),
        h("dt", {}, t("col.price")), h("dd", {}, money(ticket.price)),
        h("dt", {}, t("col.status")), h("dd", {}, t("ticket." + ticket.status))),
      reissued ? h("p", { role: "status", class: "note" }, t("ticket.reissued")) : null,
      qr ? h("img", { src: qr, alt: t("ticket.qr_alt", { id: ticket.id }),
        class: "ticket-qr", width: 232, height: 232 }) : h("p", {}, t("ticket.no_code")),
      ticket.code ? h("p", { class: "ticket-code" }, ticket.code) : null,
      h("p", { class: "no-print" },
        h("button", { type: "button", onclick: () => window.print() }, t("ticket.print")),
        replaceable ? " " : null,
        replaceable ? twoStepButton(t("ticket.reissue"), t("ticket.confirm_reissue"),
          t("ticket.reissue"), { box, action: () => post(`/tickets/${id}/reissue`),
            then: () => draw(true) }) : null),
      box);
  });
  draw();
}
