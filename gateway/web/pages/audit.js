// The audit log (admin): staff actions on money and access, newest first (GET /audit), by
// action; who did it (by name), when, from which address, on what, and the event's details.
import { get, query } from "../api.js";
import { dateTime, t } from "../i18n.js";
import { field, h, loading, table } from "../ui.js";

const ACTIONS = ["clerk_sale", "refund", "show_cancelled", "show_changed", "play_repriced",
  "user_changed", "user_deleted", "code_reissued"];
const SIZE = 50;

export function render(main, { query: params }) {
  const action = params.get("action") || "";
  const page = Math.max(1, Number(params.get("page")) || 1);
  const pick = h("select", { name: "action" }, h("option", { value: "" }, t("audit.any")),
    ACTIONS.map((a) => h("option", { value: a, selected: a === action }, t("audit." + a))));
  const form = h("form", { class: "filters", role: "search", "aria-label": t("audit.filter") },
    field(t("field.action"), pick), h("button", { type: "submit" }, t("action.show")));
  const go = (values) => { location.hash = "#/audit" + query(values); };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go({ action: pick.value });
  });
  const list = h("div");
  main.append(h("h1", {}, t("audit.title")), h("p", { class: "muted" }, t("audit.about")),
    form, list);
  loading(list, async () => {
    const answer = await get("/audit" + query({ action, page, page_size: SIZE }));
    // Who: the staff members' names, one read each (an account deleted since: its number).
    const ids = [...new Set(answer.items.map((e) => e.actor_id).filter(Boolean))];
    const names = new Map(await Promise.all(ids.map((id) => get(`/users/${id}`)
      .then((u) => [id, u.username], () => [id, `#${id}`]))));
    return { answer, names };
  }, ({ answer, names }) => {
    if (!answer.items.length) return list.append(h("p", {}, t("audit.none")));
    const pages = Math.max(1, Math.ceil(answer.total / SIZE));
    list.append(table([t("col.when"), t("col.action"), t("col.who"), t("col.address"),
      t("col.subject"), t("col.details")], answer.items.map((e) => [
      dateTime(e.at), t("audit." + e.action),
      e.actor_id ? `${names.get(e.actor_id)} (${t("role." + e.actor_role)})` : "—",
      e.address || "—", e.subject, h("code", {}, details(e.details))])),
    h("p", {},
      page > 1 ? h("button", { type: "button", class: "secondary",
        onclick: () => go({ action, page: page - 1 }) }, "‹") : null, " ",
      `${page} / ${pages}`, " ",
      page < pages ? h("button", { type: "button", class: "secondary",
        onclick: () => go({ action, page: page + 1 }) }, "›") : null));
  });
}

/** An entry's details as one line: `key: value` pairs, lists and objects as JSON. */
function details(values) {
  return Object.entries(values || {}).map(([key, value]) => `${key}: ${
    value !== null && typeof value === "object" ? JSON.stringify(value) : value}`).join(", ");
}
