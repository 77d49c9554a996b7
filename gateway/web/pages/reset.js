// Forgotten password: ask for a reset token by e-mail, then set a new password with it
// (POST /auth/password-reset, /auth/password-reset/confirm).
import { post } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, field, h, onSubmit } from "../ui.js";

export function render(main) {
  const askBox = alertBox();
  const asked = h("p", { role: "status" });
  const ask = h("form", { novalidate: true },
    field(t("field.email"), h("input", { name: "email", type: "email", autocomplete: "email",
      required: true })),
    askBox, h("button", { type: "submit" }, t("reset.send")), asked);
  onSubmit(ask, askBox, async (values) => {
    await post("/auth/password-reset", { email: values.email });
    asked.textContent = t("reset.sent");
  });

  const setBox = alertBox();
  const done = h("p", { role: "status" });
  const set = h("form", { novalidate: true },
    field(t("reset.token"), h("input", { name: "token", autocomplete: "off", required: true })),
    field(t("field.new_password"), h("input", { name: "new_password", type: "password",
      autocomplete: "new-password", required: true })),
    setBox, h("button", { type: "submit" }, t("reset.set")), done);
  onSubmit(set, setBox, async (values) => {
    await post("/auth/password-reset/confirm", values);
    set.reset();
    done.replaceChildren(t("reset.done"), " ", h("a", { href: "#/signin" }, t("action.signin")));
  });

  main.append(h("h1", {}, t("reset.title")), ask, h("h2", {}, t("reset.have_token")), set);
}
