// A table of tickets with their show and a Refund button (customer's account, box office).
import { get, post } from "./api.js";
import { dateTime, money, seatName, t } from "./i18n.js";
import { alertBox, h, showError, table } from "./ui.js";

const shows = new Map();
/** A show by id, read once per page load (null when it cannot be read). */
export function show(id) {
  if (!shows.has(id)) shows.set(id, get(`/schedules/${id}`).catch(() => null));
  return shows.get(id);
}

export function ticketsTable(items, reload) {
  const wrap = h("div");
  if (!items.length) {
    wrap.append(h("p", {}, t("tickets.none")));
    return wrap;
  }
  const box = alertBox();
  const rows = items.map((ticket) => {
    const what = h("span", {}, "…");
    const when = h("span", {}, "");
    show(ticket.schedule_id).then((s) => {
      what.textContent = s ? s.play_name : "—";
      when.textContent = s ? dateTime(s.starts_at) : "";
    });
    const action = ticket.status === "sold"
      ? h("button", { type: "button", class: "secondary",
        "aria-describedby": `ticket-${ticket.id}`,
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            await post(`/tickets/${ticket.id}/refund`);
            reload();
          } catch (error) {
            event.target.disabled = false;
            showError(box, error);
          }
        } }, t("action.refund"))
      : t("ticket.refunded_at", { when: dateTime(ticket.refunded_at) });
    const print = ticket.status === "sold"
      ? h("a", { href: `#/ticket/${ticket.id}`, "aria-describedby": `ticket-${ticket.id}` },
        t("ticket.open"))
      : null;
    return [what, when, h("span", { id: `ticket-${ticket.id}` }, seatName(ticket.row, ticket.col)),
      money(ticket.price), t("ticket." + ticket.status), h("span", {}, print, " ", action)];
  });
  wrap.append(box, table([t("col.show"), t("col.when"), t("col.seat"), t("col.price"),
    t("col.status"), t("col.action")], rows, { numeric: [3] }));
  return wrap;
}
