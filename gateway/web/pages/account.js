// The signed-in person's tickets (with Refund), orders, waiting lists, e-mail and password.
import { all, del, get, patch, post, session } from "../api.js";
import { dateTime, money, seatName, t } from "../i18n.js";
import {
  alertBox, field, h, loading, mailLanguageField, onSubmit, table, twoStepButton,
} from "../ui.js";
import { show, ticketsTable } from "../tickets.js";

export function render(main) {
  const user = session.user;
  const tickets = h("section", { "aria-labelledby": "tickets-h" });
  const orders = h("section", { "aria-labelledby": "orders-h" });
  const waiting = h("section", { "aria-labelledby": "waitlists-h" });
  main.append(h("h1", {}, t("account.title", { name: user.username })),
    h("h2", { id: "tickets-h" }, t("account.tickets")), tickets,
    h("h2", { id: "orders-h" }, t("account.orders")), orders,
    h("h2", { id: "waitlists-h" }, t("account.waitlists")), waiting,
    h("h2", { id: "email-h" }, t("account.email")), emailSection(),
    h("h2", { id: "password-h" }, t("account.password")), passwordForm());
  const loadTickets = () => loading(tickets, () => all("/tickets", {}, 500),
    (items) => tickets.append(ticketsTable(items, loadTickets)));
  loadTickets();
  const loadWaiting = () => loading(waiting, () => get("/waitlist?page_size=50"), (page) => {
    if (!page.items.length) return waiting.append(h("p", {}, t("account.no_waitlists")));
    const box = alertBox();
    waiting.append(box, table([t("col.show"), t("col.when"), t("col.seats"), t("col.status")],
      page.items.map((entry) => {
        const what = h("a", { href: `#/show/${entry.schedule_id}` }, "…");
        const when = h("span", {}, "");
        show(entry.schedule_id).then((s) => {
          what.textContent = s ? s.play_name : String(entry.schedule_id);
          when.textContent = s ? dateTime(s.starts_at) : "";
        });
        if (entry.status !== "waiting") {
          return [what, when, String(entry.quantity), t("waitlist.status." + entry.status)];
        }
        // Leaving takes two clicks (the place in line is lost); the show's link names it.
        what.id = `waitlist-${entry.id}`;
        const leave = twoStepButton(t("action.leave_waitlist"), t("waitlist.confirm_leave"),
          t("action.leave_waitlist"), { box, done: t("waitlist.left"), then: loadWaiting,
            action: () => del(`/waitlist/${entry.id}`) });
        leave.setAttribute("aria-describedby", what.id);
        return [what, when, String(entry.quantity), h("span", {},
          t("waitlist.position", { position: entry.position }), " ", leave)];
      }), { numeric: [2] }));
  });
  loadWaiting();
  loading(orders, () => get("/orders?page_size=50"), (page) => {
    if (!page.items.length) return orders.append(h("p", {}, t("account.no_orders")));
    orders.append(table(
      [t("col.order"), t("col.show"), t("col.when"), t("col.seats"), t("col.total"),
        t("col.status")],
      page.items.map((o) => [String(o.id), o.play_name || "—", dateTime(o.starts_at),
        o.seats.map((s) => seatName(s.row, s.col)).join(", "), money(o.total, o.currency),
        t("order." + o.status)]), { numeric: [4] }));
  });
}

// The address, whether it is verified (a code form while not), and the language of the mail.
function emailSection() {
  const section = h("section", { "aria-labelledby": "email-h" });
  const draw = (user) => {
    const box = alertBox();
    const state = h("p", { role: "status" }, user.email
      ? t(user.email_verified ? "email.verified" : "email.unverified", { email: user.email })
      : t("email.none"));
    const change = h("form", { novalidate: true },
      field(t("field.email"), h("input", { name: "email", type: "email", value: user.email || "",
        autocomplete: "email" })),
      mailLanguageField(user.language || "en"),
      h("button", { type: "submit", class: "secondary" }, t("action.save")));
    onSubmit(change, box, async (values) => {
      draw(await patch("/users/me", { email: values.email || null,
        language: values.language }));
    });
    const verify = user.email && !user.email_verified
      ? h("form", { novalidate: true },
        field(t("email.code"), h("input", { name: "code", inputmode: "numeric",
          autocomplete: "one-time-code", pattern: "[0-9]{6}" })),
        h("button", { type: "submit" }, t("email.verify")))
      : null;
    if (verify) {
      onSubmit(verify, box, async (values) => {
        draw(await post("/users/me/email/verify", { code: values.code }));
      });
    }
    section.replaceChildren(state, box, verify || "", change);
  };
  get("/users/me").then(draw).catch(() => draw(session.user));
  return section;
}

function passwordForm() {
  const box = alertBox();
  const done = h("p", { role: "status" });
  const form = h("form", { novalidate: true },
    field(t("field.old_password"), h("input", { name: "old_password", type: "password",
      autocomplete: "current-password" })),
    field(t("field.new_password"), h("input", { name: "new_password", type: "password",
      autocomplete: "new-password" })),
    box, h("button", { type: "submit" }, t("action.change_password")), done);
  onSubmit(form, box, async (values) => {
    done.textContent = "";
    await post("/users/me/password", values);
    // Every token issued before the change stops working: sign in again with the new one.
    const token = await post("/auth/login", { username: session.user.username,
      password: values.new_password });
    session.save(token.access_token, session.user);
    form.reset();
    done.textContent = t("account.password_changed");
  });
  return form;
}

