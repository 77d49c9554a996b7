// What's on: plays with their upcoming shows; search by name, filter by kind and dates.
import { all, query } from "../api.js";
import { dateTime, money, t } from "../i18n.js";
import { field, h, loading } from "../ui.js";

const KINDS = ["movie", "drama", "opera", "concert", "other"];

export function render(main, { query: params }) {
  const q = h("input", { name: "q", type: "search", value: params.get("q") || "" });
  const kind = h("select", { name: "kind" }, h("option", { value: "" }, t("kind.any")),
    KINDS.map((k) => h("option", { value: k, selected: params.get("kind") === k },
      t("kind." + k))));
  const from = h("input", { name: "from", type: "date", value: params.get("from") || "" });
  const to = h("input", { name: "to", type: "date", value: params.get("to") || "" });
  const form = h("form", { class: "filters", role: "search" },
    field(t("field.search"), q), field(t("field.kind"), kind),
    field(t("field.from"), from), field(t("field.to"), to),
    h("button", { type: "submit" }, t("action.search")));
  const results = h("div");
  main.append(h("h1", {}, t("shows.title")), form, results);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    location.hash = "#/" + query(values);
  });
  loading(results, () => load(params), (data) => draw(results, data));
}

async function load(params) {
  const now = new Date();
  const fromDay = params.get("from");
  const toDay = params.get("to");
  let from = fromDay ? new Date(fromDay + "T00:00:00") : now;
  if (from < now) from = now;
  const to = toDay ? new Date(toDay + "T00:00:00") : null;
  if (to) to.setDate(to.getDate() + 1);
  const [plays, shows] = await Promise.all([
    all("/plays", { q: params.get("q"), kind: params.get("kind") }, 500),
    all("/schedules", { status: "scheduled", from: from.toISOString(),
      to: to ? to.toISOString() : null }, 1000),
  ]);
  return { plays, shows };
}

function draw(results, { plays, shows }) {
  const byPlay = new Map();
  for (const show of shows) {
    if (!byPlay.has(show.play_id)) byPlay.set(show.play_id, []);
    byPlay.get(show.play_id).push(show);
  }
  const listed = plays.filter((play) => byPlay.has(play.id));
  if (!listed.length) {
    results.append(h("p", { role: "status" }, t("shows.none")));
    return;
  }
  results.append(h("p", { role: "status", class: "muted" },
    t("shows.count", { plays: listed.length })),
  h("ul", { class: "cards" }, listed.map((play) => h("li", { class: "card" },
    h("h2", {}, play.name),
    h("p", { class: "muted" }, [t("kind." + play.kind), t("rating." + play.rating),
      t("minutes", { n: play.duration_minutes }), play.area].filter(Boolean).join(" · ")),
    play.description ? h("p", {}, play.description) : null,
    h("ul", {}, byPlay.get(play.id).sort((a, b) => a.starts_at.localeCompare(b.starts_at))
      .map((show) => h("li", {}, h("a", { href: `#/show/${show.id}` },
        t("shows.link", { when: dateTime(show.starts_at), studio: show.studio_name })),
      " · ", money(show.price))))))));
}
