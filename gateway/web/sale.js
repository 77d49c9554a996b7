// A show's sale: the seat map (live, from the seat-map stream; polled every few seconds only
// where the browser has no EventSource), the selection with each seat's zone and price and,
// when the play offers ticket types, a type per seat, "Hold seats", the hold's countdown,
// "Pay" with a payment reference, "Cancel hold". Used by the customer's show page and by the
// box office (with `customer`: the hold is made on that customer's account). `onSeats(map)`
// hears every new seat map (the show page's waiting list follows it).
import { ApiError, del, get, newKey, post, session } from "./api.js";
import { DEFAULT_CURRENCY, dateTime, duration, money, number, seatName, t } from "./i18n.js";
import { alertBox, field, h, showError } from "./ui.js";

const POLL_MS = 3000;

export function mountSale(container, scheduleId,
  { customer = null, show = null, onSignIn, onPaid, onSeats } = {}) {
  const map = document.createElement("seat-map");
  const box = alertBox();
  const status = h("p", { role: "status", class: "muted" });
  const rules = h("div", { class: "muted" });
  const summary = h("div", { "aria-live": "polite" });
  const total = h("p", { "aria-live": "polite" });
  const holdButton = h("button", { type: "button", disabled: true }, t("action.hold"));
  const holdPanel = h("div");
  // Or ticket_svc picks: the best `quantity` seats (together: side by side in one row).
  const bestButton = h("button", { type: "submit", class: "secondary" }, t("action.hold_best"));
  const bestType = h("select", { name: "type" });
  const bestTypeField = h("div", { hidden: true }, field(t("sale.best_type"), bestType));
  const best = h("form", { novalidate: true, "aria-labelledby": "best-h" },
    h("h3", { id: "best-h" }, t("sale.best_title")),
    field(t("field.quantity"), h("input", { name: "quantity", type: "number", min: 1, max: 10,
      value: 2 })),
    h("p", {}, h("label", { class: "check" }, h("input", { type: "checkbox",
      name: "together", checked: true }), t("sale.together"))),
    bestTypeField, bestButton);
  const side = h("div", { class: "panel" }, h("h2", {}, t("sale.your_seats")), rules, summary,
    total, box, holdButton, best, status, holdPanel);
  container.append(h("div", { class: "layout" }, h("div", {}, map), side));
  const types = new Map();  // seat index → the chosen ticket type's name ("": full price)

  let hold = null;          // the reservation while held
  let holdTitle = null;     // what the hold is called when it was made elsewhere
  let timer = null;
  let poll = null;
  let stream = null;        // the seat-map stream (EventSource), while the page is open
  let stopped = false;
  let broken = new Set();

  map.addEventListener("change", (event) => {
    const lost = event.detail.lost;
    if (lost.length) {
      showError(box, null, { message: t("sale.lost", { seats: lost.map(
        (s) => seatName(s.row, s.col)).join(", ") }) });
    }
    drawSummary();
  });
  map.addEventListener("limit", (event) => {
    showError(box, null, { message: t("sale.limit", { max: event.detail }) });
  });

  const offered = () => (show && show.ticket_types) || [];
  /** What a seat costs at a ticket type: as ticket_svc prices it (percent rounded half up). */
  const atType = (seat, type) => (!type ? seat.price : type.amount != null ? type.amount
    : Math.floor((seat.price * type.percent + 50) / 100));
  const priced = (seat) => atType(seat, offered().find((k) => k.name === types.get(
    seatIndex(seat))));
  const seatIndex = (seat) => (seat.row - 1) * map.cols + (seat.col - 1);
  if (offered().length) {  // the best seats, all at one of the play's ticket types
    bestType.append(h("option", { value: "" }, t("sale.best_full")),
      ...offered().map((type) => h("option", { value: type.name }, type.name)));
    bestTypeField.hidden = false;
  }

  function drawRules() {
    rules.replaceChildren(
      show && show.max_tickets_per_customer
        ? h("p", {}, t("sale.cap", { max: show.max_tickets_per_customer })) : "",
      map.noSingleGaps ? h("p", {}, t("sale.no_single_gaps")) : "");
  }

  function drawTotal() {
    const seats = map.seats;
    total.replaceChildren(seats.length ? h("strong", {}, t("sale.total", {
      total: money(seats.reduce((sum, s) => sum + priced(s), 0), DEFAULT_CURRENCY) })) : "");
  }

  function drawSummary() {
    const seats = map.seats;
    for (const i of types.keys()) if (!map.selected.has(i)) types.delete(i);
    summary.replaceChildren(seats.length
      ? h("div", {}, h("p", {}, t("sale.selected", { count: seats.length })),
        h("ul", { class: "picked" }, seats.map((seat) => h("li", {},
          t(seat.zone ? "sale.seat_zone" : "sale.seat", { seat: seatName(seat.row, seat.col),
            zone: seat.zone, price: money(seat.price, DEFAULT_CURRENCY) }),
          offered().length ? typeChoice(seat) : ""))))
      : h("p", { class: "muted" }, t("sale.pick")));
    drawTotal();
    holdButton.disabled = hold !== null || seats.length === 0;
    bestButton.disabled = hold !== null;
  }

  /** The ticket type of one selected seat: full price, or one of the play's types. */
  function typeChoice(seat) {
    const i = seatIndex(seat);
    const choice = h("select", { "aria-label": t("sale.type_of", {
      seat: seatName(seat.row, seat.col) }) },
    h("option", { value: "" }, t("sale.full_price", { price: money(seat.price) })),
    offered().map((type) => h("option", { value: type.name,
      selected: types.get(i) === type.name }, t("sale.type_price", { type: type.name,
      price: money(atType(seat, type)) }))));
    choice.addEventListener("change", () => {
      types.set(i, choice.value);
      drawTotal();
    });
    return h("div", {}, choice);
  }

  async function refresh(first) {
    try {
      const data = await get(`/schedules/${scheduleId}/seats`);
      if (stopped) return;
      if (first) {
        map.load(data, { broken });
        drawSummary();
        drawRules();
      } else {
        map.update(data);
      }
      status.textContent = t("sale.available", { count: number(data.available) });
      if (onSeats) onSeats(data);
    } catch (error) {
      if (first) showError(box, error, { retry: () => refresh(true) });
    }
  }

  async function start() {
    if (!show) show = await get(`/schedules/${scheduleId}`).catch(() => null);
    if (session.user && show) {
      try {
        const plan = await get(`/studios/${show.studio_id}/seats`);
        broken = new Set(plan.seats.filter((s) => s.kind === "broken")
          .map((s) => `${s.row}:${s.col}`));
      } catch { /* drawn without broken places */ }
    }
    await refresh(true);
    if (stopped) return;
    if (window.EventSource) {
      listen();
      return;
    }
    // No stream in this browser: poll. A hidden tab does not poll; it catches up when shown.
    poll = setInterval(() => { if (!document.hidden) refresh(false); }, POLL_MS);
  }

  /** The seat map as it changes: a snapshot, then only the seats that changed. EventSource
   * reconnects by itself, with the last version as Last-Event-ID. */
  function listen() {
    stream = new EventSource(`/api/v1/schedules/${scheduleId}/seats/stream`);
    stream.addEventListener("snapshot", (event) => {
      const data = JSON.parse(event.data);
      map.update(data);
      drawRules();
      status.textContent = t("sale.available", { count: number(data.available) });
      if (onSeats) onSeats(data);
    });
    stream.addEventListener("changes", (event) => {
      const data = JSON.parse(event.data);
      map.update({ rows: map.rows, cols: map.cols, seats: data.seats });
      const available = map.cells.filter((c) => c && c.status === "available").length;
      status.textContent = t("sale.available", { count: number(available) });
      if (onSeats) onSeats({ ...data, available });
    });
  }

  holdButton.addEventListener("click", () => {
    const seats = map.seats.map((seat) => {
      const type = types.get(seatIndex(seat));
      return type ? { row: seat.row, col: seat.col, type } : { row: seat.row, col: seat.col };
    });
    requestHold({ schedule_id: scheduleId, seats }, holdButton);
  });

  best.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = new FormData(best);
    const body = { schedule_id: scheduleId, quantity: Number(values.get("quantity")),
      together: values.get("together") === "on" };
    if (values.get("type")) body.type = values.get("type");
    requestHold(body, bestButton);
  });

  /** Ask for a hold (`body`: named seats, or the best `quantity`), `button` busy meanwhile. */
  async function requestHold(body, button) {
    box.replaceChildren();
    if (!session.user) {
      if (onSignIn) onSignIn();
      return;
    }
    if (customer) body.customer_id = customer.id;
    button.disabled = true;
    const key = newKey();
    const attempt = async () => {
      try {
        hold = await post("/reservations", body, { key });
        map.clear();
        await refresh(false);
        drawHold();
      } catch (error) {
        button.disabled = false;
        const named = () => (error.body.errors || []).map((e) => e.loc.find(
          (p) => p && typeof p === "object")).filter(Boolean)
          .map((s) => seatName(s.row, s.col)).join(", ") || "?";
        if (error instanceof ApiError && error.code === "seat_unavailable" && !body.seats) {
          showError(box, error, { message: t("sale.no_best", { count: body.quantity }) });
        } else if (error instanceof ApiError && error.code === "seat_unavailable") {
          showError(box, error, { message: t("sale.taken", { seats: named() }) });
          const data = await get(`/schedules/${scheduleId}/seats`).catch(() => null);
          if (data) map.update(data);
          drawSummary();
        } else if (error instanceof ApiError && error.code === "single_seat_gap") {
          showError(box, error, { message: t("sale.single_gap", { seats: named() }) });
        } else if (error instanceof ApiError && error.code === "limit_reached") {
          showError(box, error, { message: t("sale.limit_reached", {
            max: show?.max_tickets_per_customer ?? "?" }) });
        } else {
          showError(box, error, { retry: attempt });
        }
      }
    };
    await attempt();
  }

  function drawHold() {
    const countdown = h("div", { role: "timer", "aria-label": t("hold.time_left") });
    const reference = h("input", { name: "payment_ref", id: "payment-ref", maxlength: 100,
      autocomplete: "off" });
    const payBox = alertBox();
    const pay = h("button", { type: "submit" }, t("action.pay"));
    const cancel = h("button", { type: "button", class: "danger" }, t("action.cancel_hold"));
    const form = h("form", { novalidate: true },
      h("div", { class: "field" }, h("label", { for: "payment-ref" }, t("field.payment_ref")),
        reference),
      payBox, h("p", {}, pay, " ", cancel));
    holdPanel.replaceChildren(h("section", { "aria-labelledby": "hold-title" },
      h("h2", { id: "hold-title" }, holdTitle || (customer
        ? t("hold.title_for", { name: customer.username }) : t("hold.title"))),
      h("ul", { class: "picked" }, hold.seats.map((s) => h("li", {}, seatName(s.row, s.col),
        " — ", s.type ? `${s.type}, ` : "", money(s.price, hold.currency)))),
      h("p", {}, h("strong", {}, t("sale.total", { total: money(hold.total, hold.currency) }))),
      h("p", {}, t("hold.expires")), countdown, form));
    const ends = Date.parse(hold.expires_at);
    const tick = () => {
      const left = (ends - Date.now()) / 1000;
      countdown.textContent = duration(left);
      if (left <= 0) expired();
    };
    tick();
    timer = setInterval(tick, 250);
    reference.focus();
    const key = newKey();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      pay.disabled = true;
      const attempt = async () => {
        try {
          const body = reference.value.trim() ? { payment_ref: reference.value.trim() } : {};
          const paid = await post(`/reservations/${hold.id}/pay`, body, { key });
          done(paid);
        } catch (error) {
          pay.disabled = false;
          if (error.code === "hold_expired") expired();
          else showError(payBox, error, { retry: attempt, form });
        }
      };
      await attempt();
    });
    cancel.addEventListener("click", async () => {
      try {
        await del(`/reservations/${hold.id}`);
        endHold();
        status.textContent = t("hold.cancelled");
        await refresh(false);
      } catch (error) {
        showError(payBox, error, { retry: () => cancel.click() });
      }
    });
  }

  function endHold() {
    clearInterval(timer);
    hold = null;
    holdTitle = null;
    holdPanel.replaceChildren();
    drawSummary();
  }

  function expired() {
    if (!hold) return;
    endHold();
    showError(box, null, { message: t("hold.expired") });
    refresh(false);
  }

  function done(paid) {
    clearInterval(timer);
    hold = null;
    holdTitle = null;
    holdPanel.replaceChildren(h("div", { class: "note", role: "status" },
      h("p", {}, h("strong", {}, t("paid.title"))),
      h("ul", {}, paid.tickets.map((ticket) => h("li", {}, seatName(ticket.row, ticket.col),
        " — ", ticket.type ? `${ticket.type}, ` : "", money(ticket.price, paid.currency)))),
      h("p", {}, t("paid.total", { total: money(paid.total, paid.currency),
        when: dateTime(paid.paid_at) })),
      customer ? null : h("a", { href: "#/account" }, t("paid.see_tickets"))));
    refresh(false);
    drawSummary();
    if (onPaid) onPaid(paid);
  }

  start();
  const stop = () => {
    stopped = true;
    clearInterval(poll);
    if (stream) stream.close();  // closing the page releases what the stream held
    clearInterval(timer);
  };
  /** A hold made for this person elsewhere (a waiting-list offer): shown and paid like one
   * made here. */
  stop.adopt = (reservation, title) => {
    if (stopped || (hold && hold.id === reservation.id)) return;
    clearInterval(timer);
    hold = reservation;
    holdTitle = title;
    drawSummary();
    drawHold();
  };
  return stop;
}
