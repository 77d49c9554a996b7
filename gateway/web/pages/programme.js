// Plays and shows (manager): new play, edit a play and its ticket types, schedule a show with
// its zone prices, cap and single-seat rule (a clash is shown at "Starts at"), move or
// re-price a show (its price zones, the cap per account, the single-seat rule), upcoming shows
// with "Cancel show"; delete a play.
import { all, del, get, patch, post } from "../api.js";
import { dateTime, day, fromMinor, money, t, toMinor } from "../i18n.js";
import {
  alertBox, describe, field, h, loading, onSubmit, showError, table, twoStepButton, uid,
} from "../ui.js";

const KINDS = ["movie", "drama", "opera", "concert", "other"];
const RATINGS = ["all", "child", "teen", "adult"];

export function render(main) {
  const plays = h("div");
  const shows = h("div");
  const forms = h("div");
  const editing = h("div");
  main.append(h("h1", {}, t("programme.title")), editing, forms,
    h("h2", {}, t("programme.plays")), plays, h("h2", {}, t("programme.shows")), shows);
  const reload = () => {
    loading(plays, () => Promise.all([all("/plays", {}, 500), all("/studios", {}, 500)]),
      ([playList, studios]) => {
        const box = alertBox();
        plays.append(box, table([t("col.name"), t("col.kind"), t("col.run"), t("col.price"),
          t("col.action")], playList.map((p) => [p.name, t("kind." + p.kind),
          `${day(p.starts_on)} – ${day(p.ends_on)}`, money(p.price),
          h("span", {}, h("button", { type: "button", class: "secondary",
            "aria-label": `${t("action.edit")} ${p.name}`,
            onclick: () => edit(t("programme.edit_play", { name: p.name }),
              playForm(done, p)) }, t("action.edit")), " ",
          twoStepButton(t("action.delete"), t("programme.confirm_delete_play"),
            `${t("action.delete")} ${p.name}`, { action: () => del(`/plays/${p.id}`), box,
              done: t("programme.play_deleted", { name: p.name }), then: reload }))]),
        { numeric: [3] }));
        forms.replaceChildren(
          h("h2", { id: "new-play" }, t("programme.new_play")), playForm(reload),
          h("h2", { id: "new-show" }, t("programme.new_show")),
          showForm(playList, studios, reload));
      });
    loading(shows, () => all("/schedules", { status: "scheduled",
      from: new Date().toISOString() }, 500), (items) => {
      const box = alertBox();
      shows.append(box, table([t("col.show"), t("col.studio"), t("col.when"), t("col.price"),
        t("col.action")], items.sort((a, b) => a.starts_at.localeCompare(b.starts_at))
        .map((s) => [s.play_name, s.studio_name, dateTime(s.starts_at), money(s.price),
          h("span", {}, h("button", { type: "button", class: "secondary",
            "aria-label": `${t("action.edit")}: ${s.play_name}, ${dateTime(s.starts_at)}`,
            onclick: () => edit(t("programme.edit_show", { name: s.play_name,
              when: dateTime(s.starts_at) }), showEditForm(s, done)) }, t("action.edit")),
          " ", cancelButton(s, box, reload))]), { numeric: [3] }));
    });
  };
  const edit = (title, form) => {
    editing.replaceChildren(h("h2", { id: "editing-h" }, title), form);
    form.querySelector("input, select").focus();
  };
  const done = () => {
    editing.replaceChildren();
    reload();
  };
  reload();
}

function localInput(iso) {
  const date = new Date(iso);
  return new Date(date - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function showEditForm(show, done) {
  const box = alertBox();
  const form = h("form", { novalidate: true, "aria-labelledby": "editing-h" },
    field(t("field.starts_at"), h("input", { name: "starts_at", type: "datetime-local",
      value: localInput(show.starts_at) })),
    field(t("field.price"), h("input", { name: "price", inputmode: "decimal",
      value: fromMinor(show.price) })),
    capField(show.max_tickets_per_customer));
  const zones = zonePrices();
  const [gapsRule, gaps] = gapsField();
  form.append(zones, gapsRule, box, h("button", { type: "submit" }, t("action.save")));
  // The show's zones are those of its own seat map (the studio's as it was when scheduled).
  let rules = null;
  const ready = get(`/schedules/${show.id}/seats`).then((map) => {
    rules = map;
    gaps.checked = map.no_single_gaps;
    zonePrices(zones, map, show.prices || {});
  });
  onSubmit(form, box, async (values) => {
    await ready;
    const body = {};
    if (values.starts_at !== localInput(show.starts_at)) {
      body.starts_at = new Date(values.starts_at).toISOString();
    }
    if (toMinor(values.price) !== show.price) body.price = toMinor(values.price);
    const cap = capOf(values);
    if (cap !== (show.max_tickets_per_customer ?? null)) body.max_tickets_per_customer = cap;
    const prices = pricesOf(values);
    if (!sameEntries(prices, show.prices || {})) body.prices = prices;
    if (Object.keys(body).length) await patch(`/schedules/${show.id}`, body);
    if (gaps.checked !== rules.no_single_gaps) {
      await patch(`/schedules/${show.id}/seat-rules`, { no_single_gaps: gaps.checked });
    }
    done();
  });
  return form;
}

function capField(value) {
  return field(t("field.max_per_customer"), h("input", { name: "max_tickets_per_customer",
    type: "number", min: 1, max: 10000, value: value ?? "" }));
}

function capOf(values) {
  return values.max_tickets_per_customer ? Number(values.max_tickets_per_customer) : null;
}

/** The single-seat rule's checkbox, in a paragraph of its own: [paragraph, checkbox]. */
function gapsField() {
  const input = h("input", { type: "checkbox", name: "no_single_gaps", id: uid("gaps") });
  return [h("p", {}, h("label", { for: input.id, class: "check" }, input,
    t("field.no_single_gaps"))), input];
}

/** The price fields of a show's zones: with no seat map yet, a fieldset saying it is loading;
 * with one, that fieldset redrawn with a field per zone of the map (and of `prices`). */
function zonePrices(fieldset = h("fieldset"), map = null, prices = {}) {
  const legend = h("legend", {}, t("programme.zone_prices"));
  if (!map) {
    fieldset.replaceChildren(legend, h("p", { class: "muted" }, t("loading")));
    return fieldset;
  }
  const names = [...new Set([...map.seats.map((s) => s.zone).filter(Boolean),
    ...Object.keys(prices)])].sort();
  const fields = names.map((zone) => field(t("field.zone_price", { zone }), h("input", {
    name: `prices.${zone}`, inputmode: "decimal",
    value: prices[zone] === undefined ? "" : fromMinor(prices[zone]) })));
  fieldset.replaceChildren(legend,
    ...(fields.length ? fields : [h("p", { class: "muted" }, t("programme.no_zones"))]));
  return fieldset;
}

/** The zone prices filled in; a zone left empty costs the show's price. */
function pricesOf(values) {
  return Object.fromEntries(Object.entries(values)
    .filter(([name, value]) => name.startsWith("prices.") && value.trim())
    .map(([name, value]) => [name.slice(7), toMinor(value)]));
}

function sameEntries(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

function cancelButton(show, box, reload) {
  return twoStepButton(t("action.cancel_show"), t("programme.confirm_cancel"),
    `${t("action.cancel_show")}: ${show.play_name}, ${dateTime(show.starts_at)}`,
    { action: () => del(`/schedules/${show.id}`), box, done: t("programme.cancelled"),
      then: reload });
}

function playForm(reload, play = null) {
  const box = alertBox();
  const today = new Date().toISOString().slice(0, 10);
  const was = play || {};
  const types = ticketTypes(was.ticket_types || []);
  const form = h("form", { novalidate: true, "aria-labelledby": play ? "editing-h" : "new-play" },
    field(t("field.name"), h("input", { name: "name", value: was.name || "" })),
    field(t("field.kind"), h("select", { name: "kind" }, KINDS.map((k) =>
      h("option", { value: k, selected: k === was.kind }, t("kind." + k))))),
    field(t("field.rating"), h("select", { name: "rating" }, RATINGS.map((k) =>
      h("option", { value: k, selected: k === was.rating }, t("rating." + k))))),
    field(t("field.duration"), h("input", { name: "duration_minutes", type: "number",
      value: was.duration_minutes || 120 })),
    field(t("field.starts_on"), h("input", { name: "starts_on", type: "date",
      value: was.starts_on || today })),
    field(t("field.ends_on"), h("input", { name: "ends_on", type: "date",
      value: was.ends_on || "" })),
    field(t("field.price"), h("input", { name: "price", inputmode: "decimal",
      value: fromMinor(was.price ?? 8000) })),
    field(t("field.description"), h("input", { name: "description",
      value: was.description || "" })),
    types.element,
    box, h("button", { type: "submit" }, play ? t("action.save") : t("action.create")));
  onSubmit(form, box, async (values) => {
    const body = { duration_minutes: Number(values.duration_minutes),
      price: toMinor(values.price) };
    for (const [name, value] of Object.entries(values)) {
      if (!name.includes(".") && !(name in body)) body[name] = value;
    }
    const ticketTypesNow = types.value();
    if (!play) {
      if (!body.description) delete body.description;
      if (ticketTypesNow.length) body.ticket_types = ticketTypesNow;
      await post("/plays", body);
    } else {
      body.description = body.description || null;
      for (const key of Object.keys(body)) {
        if (body[key] === (play[key] ?? null)) delete body[key];
      }
      if (JSON.stringify(ticketTypesNow) !== JSON.stringify(types.initial)) {
        body.ticket_types = ticketTypesNow;
      }
      if (Object.keys(body).length) await patch(`/plays/${play.id}`, body);
    }
    reload();
  });
  return form;
}

/** A play's ticket types (concessions): a name, and a percentage of the seat's price or a
 * fixed amount; rows added and removed in place. value() is the API's list. */
function ticketTypes(list) {
  const rows = h("div");
  const element = h("fieldset", {}, h("legend", {}, t("programme.ticket_types")), rows,
    h("button", { type: "button", class: "secondary", onclick: () => add({}, true) },
      t("action.add_type")));
  const clean = (type) => (type.amount != null ? { name: type.name, amount: type.amount }
    : { name: type.name, percent: type.percent });
  const add = (type, focus) => {
    const name = h("input", { maxlength: 40, value: type.name || "" });
    const by = h("select", {}, ["percent", "amount"].map((k) =>
      h("option", { value: k, selected: k === (type.amount != null ? "amount" : "percent") },
        t("type_by." + k))));
    const amount = h("input", { inputmode: "decimal", value: type.amount != null
      ? fromMinor(type.amount) : type.percent ?? "" });
    const row = h("div", { class: "type-row", role: "group" });
    const remove = h("button", { type: "button", class: "danger", onclick: () => {
      row.remove();
      renumber();
    } }, t("action.remove"));
    row.append(field(t("field.type_name"), name), field(t("field.type_by"), by),
      field(t("field.type_value"), amount), remove);
    // Field errors find their input by the API's path (ticket_types.0.name).
    row.rename = (i) => {
      row.setAttribute("aria-label", t("programme.ticket_type", { n: i + 1 }));
      remove.setAttribute("aria-label", `${t("action.remove")}: ${t("programme.ticket_type",
        { n: i + 1 })}`);
      name.name = `ticket_types.${i}.name`;
      amount.name = `ticket_types.${i}.${by.value}`;
    };
    by.addEventListener("change", renumber);
    row.read = () => (by.value === "amount"
      ? { name: name.value.trim(), amount: toMinor(amount.value) }
      : { name: name.value.trim(), percent: Number(amount.value) });
    rows.append(row);
    renumber();
    if (focus) name.focus();
  };
  const renumber = () => [...rows.children].forEach((row, i) => row.rename(i));
  for (const type of list) add(type, false);
  return { element, initial: list.map(clean),
    value: () => [...rows.children].map((row) => row.read()) };
}

function showForm(plays, studios, reload) {
  const box = alertBox();
  const studio = h("select", { name: "studio_id" }, studios.map((s) =>
    h("option", { value: s.id }, s.name)));
  const zones = zonePrices();
  const [gapsRule, gaps] = gapsField();
  const done = h("p", { role: "status" });
  const form = h("form", { novalidate: true, "aria-labelledby": "new-show" },
    field(t("field.play"), h("select", { name: "play_id" }, plays.map((p) =>
      h("option", { value: p.id }, p.name)))),
    field(t("field.studio"), studio),
    field(t("field.starts_at"), h("input", { name: "starts_at", type: "datetime-local" })),
    h("div", { class: "inline" },
      field(t("field.repeat"), h("select", { name: "repeat" }, ["once", "daily", "weekly"].map(
        (r) => h("option", { value: r }, t("repeat." + r))))),
      field(t("field.show_count"), h("input", { name: "count", type: "number", min: 1,
        max: MAX_SERIES, value: 1 }))),
    field(t("field.price"), h("input", { name: "price", inputmode: "decimal" })),
    capField(null), zones, gapsRule, box, h("button", { type: "submit" }, t("action.create")),
    done);
  // The new show copies the studio's seat map as it is now: its zones are the studio's.
  const readZones = () => {
    const id = studio.value;
    zonePrices(zones);
    if (!id) return;
    get(`/studios/${id}/seats`).then((map) => {
      if (studio.value === id) zonePrices(zones, map);
    }).catch(() => { if (studio.value === id) zonePrices(zones, { seats: [] }); });
  };
  studio.addEventListener("change", readZones);
  readZones();
  onSubmit(form, box, async (values) => {
    done.textContent = "";
    const body = { play_id: Number(values.play_id), studio_id: Number(values.studio_id),
      starts_at: values.starts_at ? new Date(values.starts_at).toISOString() : "" };
    if (values.price) body.price = toMinor(values.price);
    const cap = capOf(values);
    if (cap !== null) body.max_tickets_per_customer = cap;
    const prices = pricesOf(values);
    if (Object.keys(prices).length) body.prices = prices;
    if (gaps.checked) body.no_single_gaps = true;
    const times = seriesOf(values);
    if (times.length === 1) {
      await post("/schedules", body);
      done.textContent = t("programme.created");
      setTimeout(reload, 800);
      return;
    }
    // A series: each show is scheduled on its own; those refused (a clash, the play's run)
    // are listed, the others stand.
    const refused = [];
    for (const [index, when] of times.entries()) {
      try {
        await post("/schedules", { ...body, starts_at: when.toISOString() });
      } catch (error) {
        if (index === 0 && error.status === 422) throw error;  // the form's fields say why
        refused.push(t("programme.refused_at", { when: dateTime(when.toISOString()),
          reason: describe(error) }));
      }
    }
    done.textContent = t("programme.created_n", { count: times.length - refused.length,
      total: times.length });
    if (refused.length) {
      showError(box, null, { message: t("programme.some_refused") });
      box.append(h("ul", {}, refused.map((text) => h("li", {}, text))));
    }
    if (refused.length < times.length) setTimeout(reload, refused.length ? 4000 : 800);
  });
  return form;
}

const MAX_SERIES = 60;

/** The start times a schedule form asks for: one, or `count` a day or a week apart (in local
 * time, so a 19:30 show stays at 19:30 across a change of daylight saving). */
function seriesOf(values) {
  const first = values.starts_at ? new Date(values.starts_at) : null;
  const count = Math.min(Math.max(Number(values.count) || 1, 1), MAX_SERIES);
  if (!first || values.repeat === "once" || count === 1) return [first || new Date(NaN)];
  const step = values.repeat === "weekly" ? 7 : 1;
  return Array.from({ length: count }, (_, i) => {
    const when = new Date(first);
    when.setDate(first.getDate() + i * step);
    return when;
  });
}
