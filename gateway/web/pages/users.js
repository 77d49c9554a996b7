// Users (admin): the newest accounts first, found by part of a username or e-mail address and
// by role; a new staff account, change a role, disable or enable an account (its open pages are
// signed out at their next request: the API answers 401), delete one (not one's own).
import { del, get, patch, post, query, session } from "../api.js";
import { dateTime, t } from "../i18n.js";
import { alertBox, field, h, loading, onSubmit, showError, table, twoStepButton } from "../ui.js";

const ROLES = ["customer", "clerk", "manager", "admin"];
const SIZE = 50;

export function render(main) {
  const list = h("div");
  const status = h("p", { role: "status" });
  const filters = {};  // q, role: what the search form asks
  main.append(h("h1", {}, t("users.title")), h("h2", { id: "new-user" }, t("users.new")),
    newUserForm(() => load(list, status, null, filters)), status,
    h("h2", { id: "find-users" }, t("users.find")), searchForm(filters,
      () => load(list, status, null, filters)), list);
  load(list, status, null, filters);
}

function searchForm(filters, reload) {
  const form = h("form", { role: "search", class: "inline", "aria-labelledby": "find-users" },
    field(t("field.user_search"), h("input", { name: "q", type: "search",
      autocomplete: "off" })),
    field(t("field.role"), h("select", { name: "role" }, h("option", { value: "" },
      t("users.any_role")), ROLES.map((r) => h("option", { value: r }, t("role." + r))))),
    h("button", { type: "submit" }, t("action.find")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    filters.q = values.q.trim() || undefined;
    filters.role = values.role || undefined;
    reload();
  });
  return form;
}

function load(list, status, page, filters) {
  loading(list, async () => {
    let answer = await get("/users" + query({ ...filters, page: page || 1, page_size: SIZE }));
    if (page === null && answer.total > SIZE) {
      page = Math.ceil(answer.total / SIZE);
      answer = await get("/users" + query({ ...filters, page, page_size: SIZE }));
    }
    return answer;
  }, (answer) => {
    if (!answer.total) return list.append(h("p", {}, t("users.none")));
    const box = alertBox();
    const pages = Math.max(1, Math.ceil(answer.total / SIZE));
    const rows = [...answer.items].reverse().map((user) => {
      const role = h("select", { "aria-label": t("users.role_of", { name: user.username }),
        disabled: user.id === session.user.id },
      ROLES.map((r) => h("option", { value: r, selected: r === user.role }, t("role." + r))));
      role.addEventListener("change", () => change(user, { role: role.value }));
      const toggle = h("button", { type: "button", class: user.disabled ? "secondary" : "danger",
        disabled: user.id === session.user.id,
        "aria-label": `${user.disabled ? t("users.enable") : t("users.disable")} ${user.username}`,
        onclick: () => change(user, { disabled: !user.disabled }) },
      user.disabled ? t("users.enable") : t("users.disable"));
      const remove = user.id === session.user.id ? ""
        : twoStepButton(t("action.delete"), t("users.confirm_delete"),
          `${t("action.delete")} ${user.username}`, { action: () => del(`/users/${user.id}`),
            box, then: () => {
              status.textContent = t("users.deleted", { name: user.username });
              load(list, status, answer.page, filters);
            } });
      return [user.username, role, user.disabled ? t("users.yes") : t("users.no"),
        dateTime(user.created_at), h("span", {}, toggle, " ", remove)];
    });
    async function change(user, body) {
      try {
        const saved = await patch(`/users/${user.id}`, body);
        status.textContent = t("users.saved", { name: saved.username });
        load(list, status, answer.page, filters);
      } catch (error) {
        showError(box, error);
      }
    }
    const nav = h("p", {},
      answer.page > 1 ? h("button", { type: "button", class: "secondary",
        onclick: () => load(list, status, answer.page - 1, filters) }, "‹") : null, " ",
      `${answer.page} / ${pages}`, " ",
      answer.page < pages ? h("button", { type: "button", class: "secondary",
        onclick: () => load(list, status, answer.page + 1, filters) }, "›") : null);
    list.append(box, table([t("col.user"), t("col.role"), t("col.disabled"), t("col.when"),
      t("col.action")], rows), nav);
  });
}

function newUserForm(reload) {
  const box = alertBox();
  const form = h("form", { novalidate: true, "aria-labelledby": "new-user" },
    field(t("field.username"), h("input", { name: "username", autocomplete: "off" })),
    field(t("field.password"), h("input", { name: "password", type: "password",
      autocomplete: "new-password" })),
    field(t("field.role"), h("select", { name: "role" }, ROLES.filter((r) => r !== "customer")
      .map((r) => h("option", { value: r }, t("role." + r))))),
    field(t("field.email_optional"), h("input", { name: "email", type: "email" })),
    box, h("button", { type: "submit" }, t("action.create")));
  onSubmit(form, box, async (values) => {
    if (!values.email) delete values.email;
    const user = await post("/users", values);
    form.reset();
    reload();
    setTimeout(() => {
      const note = document.querySelector("main [role=status]");
      if (note) note.textContent = t("users.created", { name: user.username });
    }, 0);
  });
  return form;
}
