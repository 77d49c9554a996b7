// The waiting list of a sold-out show, for the person signed in (the show page) or, at the box
// office, for a customer the clerk found (`customer`): join it with a number of seats, see the
// place in line, leave it, and when seats come back (the waiting-list offer: a hold made for
// the account) hand that hold to the sale to be paid.
import { del, get, post, session } from "./api.js";
import { number, t } from "./i18n.js";
import { alertBox, field, h, onSubmit, twoStepButton } from "./ui.js";

/**
 * Draws into `section`; `offered(reservation)` receives an offer's hold. Returns the listener
 * of the sale's seat maps: every change of the show's seats while the account waits reads its
 * entry again (an offer is such a change). `path`: where signing in returns to.
 */
export function waitingList(section, scheduleId, { path = "", customer = null, offered }) {
  let entry;            // undefined: not read yet; null: not in line
  let reading = false;
  let again = false;    // the seats changed while reading: read once more after
  let soldOut = false;
  // The words for the person themself, or for the clerk about the customer ("…_for").
  const say = (key, params = {}) => customer
    ? t(key + "_for", { ...params, name: customer.username }) : t(key, params);
  const read = async () => {
    if (!session.user) return null;
    const page = await get("/waitlist?page_size=100"
      + (customer ? `&user_id=${customer.id}` : ""));
    const found = page.items.find((e) => e.schedule_id === scheduleId) || null;
    return found && found.status === "left" ? null : found;  // out of line: as if never in it
  };
  const draw = () => {
    section.replaceChildren();
    section.removeAttribute("aria-labelledby");  // a region only while it has a heading
    if (entry === undefined || (!entry && !soldOut)) return;
    section.setAttribute("aria-labelledby", "waitlist-h");
    section.append(h("h2", { id: "waitlist-h" }, t("waitlist.title")));
    const status = entry ? entry.status : null;
    if (status === "waiting") {
      const box = alertBox();
      section.append(h("p", { role: "status" }, say("waitlist.waiting", {
        position: number(entry.position), quantity: entry.quantity })),
      twoStepButton(t("action.leave_waitlist"), t("waitlist.confirm_leave"),
        t("action.leave_waitlist"), { box, action: async () => {
          await del(`/waitlist/${entry.id}`);
          entry = null;
          draw();
        } }), box);
    } else if (status === "offered") {
      section.append(h("p", { role: "status", class: "note" }, say("waitlist.offered", {
        quantity: entry.quantity })));
    } else if (status === "paid") {
      section.append(h("p", { role: "status" }, say("waitlist.paid")));
    } else if (status === "passed") {
      section.append(h("p", { role: "status" }, say("waitlist.passed")));
    } else if (status === "lapsed" && !soldOut) {
      section.append(h("p", { role: "status" }, say("waitlist.lapsed")));
    } else if (!session.user) {
      section.append(h("p", {}, t("waitlist.sold_out"), " ",
        h("a", { href: "#/signin?next=" + encodeURIComponent(path) }, t("waitlist.sign_in"))));
    } else {
      section.append(joinForm());
    }
  };
  const joinForm = () => {
    const box = alertBox();
    const form = h("form", { class: "inline", novalidate: true, "aria-labelledby": "waitlist-h" },
      h("p", {}, entry ? say("waitlist.lapsed") : say("waitlist.sold_out")),
      field(t("field.quantity"), h("input", { name: "quantity", type: "number", min: 1,
        max: 10, value: 1 })),
      h("button", { type: "submit" }, customer ? t("action.join_waitlist_for", {
        name: customer.username }) : t("action.join_waitlist")), box);
    onSubmit(form, box, async (values) => {
      const body = { quantity: Number(values.quantity) };
      if (customer) body.customer_id = customer.id;
      entry = await post(`/schedules/${scheduleId}/waitlist`, body);
      draw();
    });
    return form;
  };
  const check = async () => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    do {
      again = false;
      try {
        entry = await read();
        if (entry && entry.status === "offered" && entry.reservation_id) {
          const reservation = await get(`/reservations/${entry.reservation_id}`);
          if (reservation.status === "held") offered(reservation);
          else if (reservation.status === "paid") entry = { ...entry, status: "paid" };
        }
      } catch { /* read again at the next change of the seats */ }
    } while (again);
    reading = false;
    draw();
  };
  return (seats) => {
    const wasSoldOut = soldOut;
    soldOut = seats.available === 0;
    // Read the entry at first, and at each change while in line (waiting or offered).
    if (entry === undefined || (entry && ["waiting", "offered"].includes(entry.status))) check();
    else if (wasSoldOut !== soldOut) draw();
  };
}
