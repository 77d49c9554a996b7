// Small helpers every page uses: building elements, showing failures, forms.
import { has, lang, t } from "./i18n.js";

/** h("p", {class: "x", onclick: f}, "text", child) → an element. Text is never parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

let ids = 0;
export function uid(prefix = "f") {
  return `${prefix}-${++ids}`;
}

/** A labelled field: h-built input with a label and a place for its error. */
export function field(label, input) {
  const id = input.id || (input.id = uid());
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

/** The words for a failure, as a person should read them. */
export function describe(error) {
  if (!error || error.status === undefined) return t("error.unexpected");
  switch (error.status) {
    case 0: return t("error.unreachable");
    case 429: return t("error.busy", { seconds: error.retryAfter || 1 });
    case 502: case 503: return t("error.unavailable");
    case 504: return t("error.timeout");
    default:
      // The API's words are English; other languages say it in their own words by code.
      if (has("problem." + error.code) && (lang !== "en" || !error.body.detail)) {
        return t("problem." + error.code);
      }
      return error.body.detail || t("error.unexpected");
  }
}

/**
 * Show a failure in `box` (an element with role=alert): the message, field errors next to the
 * fields of `form` they name, and a Retry button when trying again may help.
 */
export function showError(box, error, { retry, form, message } = {}) {
  box.replaceChildren(h("span", {}, message || describe(error)));
  if (error && error.transient && retry) {
    box.append(" ", h("button", { type: "button", class: "secondary", onclick: () => {
      box.replaceChildren();
      retry();
    } }, t("action.retry")));
  }
  if (form && error && Array.isArray(error.body.errors)) {
    const unplaced = [];
    for (const item of error.body.errors) {
      // A field inside a list or map is named by its path ("ticket_types.0.name"); a plain
      // field by its last name.
      const path = (item.loc || []).slice(1).filter((p) => typeof p !== "object").join(".");
      const loc = (item.loc || []).filter((part) => typeof part === "string");
      const name = loc[loc.length - 1];
      const input = (path && form.querySelector(`[name="${CSS.escape(path)}"]`))
        || (name && form.querySelector(`[name="${CSS.escape(name)}"]`));
      if (input) fieldError(input, itemText(item));
      else unplaced.push(itemText(item));
    }
    // A problem with no field of its own on this form is said with the failure itself.
    if (unplaced.length) {
      box.append(h("ul", {}, [...new Set(unplaced)].map((text) => h("li", {}, text))));
    }
  }
}

/**
 * One item of a 422's `errors` in the page's language: the API's English `msg`, or in another
 * language the catalogue's words for its `type` ("invalid.<type>"), filled from its `ctx`.
 */
export function itemText(item) {
  const key = "invalid." + item.type;
  if (item.type && has(key) && (lang !== "en" || !item.msg)) return t(key, item.ctx || {});
  return item.msg || t("error.unexpected");
}

export function fieldError(input, text) {
  const id = `${input.id}-error`;
  let note = document.getElementById(id);
  if (!note) {
    note = h("p", { class: "field-error", id });
    input.insertAdjacentElement("afterend", note);
  }
  note.textContent = text;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", id);
}

export function clearErrors(form, box) {
  if (box) box.replaceChildren();
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
}

export function alertBox() {
  return h("div", { role: "alert", class: "alert" });
}

/**
 * Run `load` and render its result with `draw` into `target`; on failure, say so in an alert
 * with Retry. The page is never left blank or spinning.
 */
export async function loading(target, load, draw) {
  target.replaceChildren(h("p", { class: "muted", role: "status" }, t("loading")));
  try {
    const result = await load();
    target.replaceChildren();
    draw(result);
  } catch (error) {
    if (error.name === "AbortError") return;
    const box = alertBox();
    target.replaceChildren(box);
    showError(box, error, { retry: () => loading(target, load, draw) });
  }
}

/** A destructive action in two clicks instead of a confirm() dialog: the first arms the
 * button (its text becomes `question`), the second runs `action`. Then `done` is said in
 * `box` and `then` runs a moment later (a reload, once the words can be read); a failure goes
 * to `box`. */
export function twoStepButton(text, question, label, { action, box, done = "", then }) {
  const button = h("button", { type: "button", class: "danger", "aria-label": label }, text);
  let armed = false;
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = question;
      button.setAttribute("aria-label", `${question} ${label}`);
      return;
    }
    try {
      await action();
    } catch (error) {
      showError(box, error, { retry: () => button.click() });
      return;
    }
    if (done) {
      box.className = "note";
      box.textContent = done;
    }
    if (then) setTimeout(then, done ? 1500 : 0);
  });
  return button;
}

/** Wire a form: on submit run `action(values)`; failures go to the form's alert. */
export function onSubmit(form, box, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, box);
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    const run = async () => {
      try {
        await action(Object.fromEntries(new FormData(form)));
      } catch (error) {
        showError(box, error, { form, retry: run });
      } finally {
        if (button && button.isConnected) button.disabled = false;
      }
    };
    await run();
  });
}

/** The language a user's mail is written in, as the API names it ("en" | "zh"): a field. The
 * default is `selected`, else the page's own language. */
export function mailLanguageField(selected = lang.startsWith("zh") ? "zh" : "en") {
  return field(t("email.language"), h("select", { name: "language" },
    [["en", "English"], ["zh", "简体中文"]].map(([code, name]) =>
      h("option", { value: code, selected: code === selected }, name))));
}

export function table(headers, rows, { caption, numeric = [] } = {}) {
  // Focusable: a table wider than a phone scrolls in its box, by keyboard too.
  return h("div", { class: "table-wrap", tabindex: 0 }, h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((text, i) =>
      h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, text)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell, i) =>
      h("td", { class: numeric.includes(i) ? "num" : null }, cell)))))));
}
