// The box-office dashboard (manager): takings and attendance by play, studio or day (table +
// chart), and a play's shows with their occupancy and attendance (no-shows once ended). Every
// figure is the API's (GET /box-office…).
import { all, get, query } from "../api.js";
import { barChart } from "../charts.js";
import { dateTime, day, money, number, percent, t } from "../i18n.js";
import { field, h, loading, table } from "../ui.js";

export function render(main, { query: params }) {
  const group = params.get("group_by") || "play";
  const groupBy = h("select", { name: "group_by" }, ["play", "studio", "day"].map((g) =>
    h("option", { value: g, selected: g === group }, t("group." + g))));
  const from = h("input", { name: "from", type: "date", value: params.get("from") || "" });
  const to = h("input", { name: "to", type: "date", value: params.get("to") || "" });
  const form = h("form", { class: "filters" }, field(t("field.group_by"), groupBy),
    field(t("field.from"), from), field(t("field.to"), to),
    h("button", { type: "submit" }, t("action.show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = "#/dashboard" + query(Object.fromEntries(new FormData(form)));
  });
  const report = h("section", { "aria-labelledby": "report-h" });
  const shows = h("section", { "aria-labelledby": "shows-h" });
  main.append(h("h1", {}, t("dashboard.title")), form,
    h("h2", { id: "report-h" }, t("dashboard.by", { group: t("group." + group) })), report,
    shows);
  loading(report, () => get("/box-office" + query({ group_by: group,
    from: params.get("from"), to: params.get("to") })), ({ items }) => {
    if (!items.length) return report.append(h("p", {}, t("dashboard.none")));
    const label = (line) => group === "day" ? day(line.key) : (line.label || String(line.key));
    const sold = items.reduce((s, i) => s + i.tickets_sold - i.tickets_refunded, 0);
    const net = items.reduce((s, i) => s + i.net, 0);
    report.append(
      h("p", {}, t("dashboard.totals", { sold: number(sold), net: money(net) })),
      table([t("col.key"), t("col.sold"), t("col.refunded"), t("col.gross"),
        t("col.refunded_money"), t("col.net"), t("col.checked_in"), t("col.no_show")],
      items.map((i) => [label(i), number(i.tickets_sold), number(i.tickets_refunded),
        money(i.gross), money(i.refunded), money(i.net), number(i.checked_in),
        number(i.no_show)]), { numeric: [1, 2, 3, 4, 5, 6, 7] }),
      barChart(items.map((i) => ({ label: label(i), value: i.net, text: money(i.net) })),
        t("dashboard.chart", { group: t("group." + group) })));
  });
  playShows(shows);
}

function playShows(section) {
  const pick = h("select", { name: "play" });
  const body = h("div");
  section.append(h("h2", { id: "shows-h" }, t("col.occupancy")),
    field(t("field.play"), pick), body);
  loading(body, () => all("/plays", {}, 500), (plays) => {
    pick.replaceChildren(h("option", { value: "" }, "—"),
      ...plays.map((p) => h("option", { value: p.id }, p.name)));
  });
  pick.addEventListener("change", () => {
    body.replaceChildren();
    if (!pick.value) return;
    loading(body, () => get(`/box-office/plays/${pick.value}`), (play) => {
      const title = t("dashboard.occupancy", { play: play.play_name || play.play_id });
      body.append(table([t("col.when"), t("col.sold"), t("col.refunded"), t("col.net"),
        t("col.occupancy"), t("col.checked_in"), t("col.no_show")],
      play.schedules.map((s) => [dateTime(s.starts_at), number(s.sold), number(s.refunded),
        money(s.net), percent(s.occupancy), number(s.checked_in),
        s.no_show === null ? "—" : number(s.no_show)]),
      { numeric: [1, 2, 3, 4, 5, 6], caption: title }),
      barChart(play.schedules.map((s) => ({ label: dateTime(s.starts_at),
        value: s.occupancy || 0, text: percent(s.occupancy) })), title));
    });
  });
}
