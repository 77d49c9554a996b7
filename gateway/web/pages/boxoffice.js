// The box office (clerk+): find the customer by username, pick a show, pick seats, hold and
// take payment on the customer's account, or put them on a sold-out show's waiting list (and
// take payment for the seats it holds for them); the customer's tickets, with Refund.
import { all, get, query } from "../api.js";
import { dateTime, t } from "../i18n.js";
import { mountSale } from "../sale.js";
import { alertBox, field, h, loading, onSubmit } from "../ui.js";
import { ticketsTable } from "../tickets.js";
import { waitingList } from "../waitlist.js";

export function render(main) {
  let customer = null;
  let stopSale = null;
  const box = alertBox();
  const found = h("p", { role: "status" });
  const username = h("input", { name: "username", autocomplete: "off" });
  const find = h("form", { class: "inline", novalidate: true },
    field(t("field.customer"), username), h("button", { type: "submit" }, t("action.find")));
  const show = h("select", { name: "show", disabled: true });
  const sale = h("div");
  const line = h("section");     // the show's waiting list, for the customer, once sold out
  const tickets = h("section");  // a region named by its heading once a customer is found
  main.append(h("h1", {}, t("boxoffice.title")), find, box, found,
    field(t("field.show"), show), sale, line, tickets);

  loading(sale, () => all("/schedules", { status: "scheduled",
    from: new Date().toISOString() }, 500), (shows) => {
    show.replaceChildren(h("option", { value: "" }, t("boxoffice.pick_show")),
      ...shows.sort((a, b) => a.starts_at.localeCompare(b.starts_at)).map((s) =>
        h("option", { value: s.id }, `${s.play_name} — ${dateTime(s.starts_at)} — ${s.studio_name}`)));
    show.disabled = false;
  });

  const loadTickets = () => {
    if (!customer) return;
    tickets.replaceChildren(h("h2", { id: "customer-tickets" },
      t("boxoffice.tickets", { name: customer.username })));
    tickets.setAttribute("aria-labelledby", "customer-tickets");
    const list = h("div");
    tickets.append(list);
    loading(list, () => all("/tickets", { user_id: customer.id }, 500),
      (items) => list.append(ticketsTable(items, loadTickets)));
  };

  const openSale = () => {
    if (stopSale) stopSale();
    stopSale = null;
    sale.replaceChildren();
    line.replaceChildren();
    line.removeAttribute("aria-labelledby");
    if (!show.value) return;
    if (!customer) {
      sale.append(h("p", { class: "note" }, t("boxoffice.find_first")));
      return;
    }
    const id = Number(show.value);
    const waitlist = waitingList(line, id, { customer, offered: (reservation) =>
      stopSale?.adopt(reservation, t("waitlist.offer_title_for", { name: customer.username })) });
    stopSale = mountSale(sale, id, { customer, onPaid: loadTickets, onSeats: waitlist });
  };
  show.addEventListener("change", openSale);

  onSubmit(find, box, async (values) => {
    found.textContent = "";
    customer = await get("/customers" + query({ username: values.username.trim() }))
      .catch((error) => {
        if (error.status === 404) {
          found.textContent = t("boxoffice.not_found", { name: values.username });
          return null;
        }
        throw error;
      });
    tickets.replaceChildren();
    tickets.removeAttribute("aria-labelledby");
    if (customer) {
      found.textContent = t("boxoffice.found", { name: customer.username });
      loadTickets();
    }
    openSale();
  });
  return () => stopSale && stopSale();
}
