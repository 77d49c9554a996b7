// One show: what, where, when, its sale and, when it is sold out, its waiting list.
import { get, post, session } from "../api.js";
import { dateTime, money, number, t } from "../i18n.js";
import { mountSale } from "../sale.js";
import { alertBox, field, h, loading, onSubmit } from "../ui.js";

export function render(main, { params, path }) {
  const id = Number(params[0]);
  const head = h("div");
  const body = h("div");
  const line = h("section");
  main.append(head, body, line);
  let stop = null;
  let left = false;  // the page was left before the show arrived: mount nothing
  loading(head, () => get(`/schedules/${id}`), (show) => {
    if (left) return;
    document.title = `${show.play_name} — ${t("brand")}`;
    head.append(h("h1", {}, show.play_name),
      h("p", {}, t("show.when_where", { when: dateTime(show.starts_at),
        studio: show.studio_name }), " · ", t("show.price", { price: money(show.price) })),
      h("p", { class: "alert" }, show.status === "cancelled" ? t("show.cancelled") : ""));
    if (show.status !== "cancelled") {
      const waitlist = waitingList(line, id, path, (reservation) => stop?.adopt(reservation,
        t("waitlist.offer_title")));
      stop = mountSale(body, id, { show, onSeats: waitlist, onSignIn: () => {
        location.hash = "#/signin?next=" + encodeURIComponent(path);
      } });
    }
  });
  return () => {
    left = true;
    if (stop) stop();
  };
}

/**
 * The waiting list of a sold-out show: join it with a number of seats, see one's place, and
 * when seats come back for one (the waiting-list offer: a hold made for them), hand that hold
 * to the sale to be paid. Returns the listener of the sale's seat maps: every change of the
 * show's seats while one waits reads one's entry again (an offer is such a change).
 */
function waitingList(section, scheduleId, path, offered) {
  let entry;            // undefined: not read yet; null: not in line
  let reading = false;
  let again = false;      // the seats changed while reading: read once more after
  let soldOut = false;
  const read = async () => {
    if (!session.user) return null;
    const page = await get("/waitlist?page_size=100");
    return page.items.find((e) => e.schedule_id === scheduleId) || null;
  };
  const draw = () => {
    section.replaceChildren();
    section.removeAttribute("aria-labelledby");  // a region only while it has a heading
    if (entry === undefined || (!entry && !soldOut)) return;
    section.setAttribute("aria-labelledby", "waitlist-h");
    section.append(h("h2", { id: "waitlist-h" }, t("waitlist.title")));
    if (entry && entry.status === "waiting") {
      section.append(h("p", { role: "status" }, t("waitlist.waiting", {
        position: number(entry.position), quantity: entry.quantity })));
    } else if (entry && entry.status === "offered") {
      section.append(h("p", { role: "status", class: "note" }, t("waitlist.offered", {
        quantity: entry.quantity })));
    } else if (entry && entry.status === "paid") {
      section.append(h("p", { role: "status" }, t("waitlist.paid")));
    } else if (entry && entry.status === "passed") {
      section.append(h("p", { role: "status" }, t("waitlist.passed")));
    } else if (entry && entry.status === "lapsed" && !soldOut) {
      section.append(h("p", { role: "status" }, t("waitlist.lapsed")));
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
      h("p", {}, entry ? t("waitlist.lapsed") : t("waitlist.sold_out")),
      field(t("field.quantity"), h("input", { name: "quantity", type: "number", min: 1,
        max: 10, value: 1 })),
      h("button", { type: "submit" }, t("action.join_waitlist")), box);
    onSubmit(form, box, async (values) => {
      entry = await post(`/schedules/${scheduleId}/waitlist`,
        { quantity: Number(values.quantity) });
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
    // Read one's entry at first, and at each change while in line (waiting or offered).
    if (entry === undefined || (entry && ["waiting", "offered"].includes(entry.status))) check();
    else if (wasSoldOut !== soldOut) draw();
  };
}
