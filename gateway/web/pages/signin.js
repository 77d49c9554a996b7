// Sign in and register (the same page; #/register adds the e-mail field).
import { get, post, session } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, field, h, mailLanguageField, onSubmit } from "../ui.js";

export function render(main, { path, query }) {
  const registering = path === "register";
  const next = query.get("next") || "";
  const box = alertBox();
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", required: true,
    autocomplete: registering ? "new-password" : "current-password" });
  const email = registering ? h("input", { name: "email", type: "email", autocomplete: "email" })
    : null;
  const form = h("form", { novalidate: true },
    field(t("field.username"), username), field(t("field.password"), password),
    email ? field(t("field.email_optional"), email) : null,
    registering ? mailLanguageField() : null,  // the page's language unless chosen otherwise
    box,
    h("button", { type: "submit" }, registering ? t("action.register") : t("action.signin")));
  main.append(
    h("h1", {}, registering ? t("register.title") : t("signin.title")),
    query.get("expired") ? h("p", { class: "note", role: "status" }, t("signin.expired")) : null,
    form,
    h("p", {}, registering
      ? h("a", { href: "#/signin" + (next ? "?next=" + encodeURIComponent(next) : "") },
        t("register.have_account"))
      : h("a", { href: "#/register" + (next ? "?next=" + encodeURIComponent(next) : "") },
        t("signin.no_account"))),
    registering ? null : h("p", {}, h("a", { href: "#/reset" }, t("signin.forgot"))));
  username.focus();
  onSubmit(form, box, async (values) => {
    if (registering) {
      const body = { username: values.username, password: values.password,
        language: values.language };
      if (values.email) body.email = values.email;
      await post("/auth/register", body);
    }
    const token = await post("/auth/login",
      { username: values.username, password: values.password });
    // Saved once the role is known: a guessed role would show the wrong menu and pages, and a
    // page opened meanwhile would be refused, then left for the role's own start page.
    const me = await get("/users/me", { token: token.access_token });
    session.save(token.access_token, me);
    location.hash = "#/" + (next || defaultPage(me.role));
  });
}

function defaultPage(role) {
  return { clerk: "box-office", manager: "dashboard", admin: "users" }[role] || "";
}
