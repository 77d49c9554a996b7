// One show: what, where, when, its sale and, when it is sold out, its waiting list.
import { get } from "../api.js";
import { dateTime, money, t } from "../i18n.js";
import { mountSale } from "../sale.js";
import { h, loading } from "../ui.js";
import { waitingList } from "../waitlist.js";

export function render(main, { params, path }) {
  const id = Number(params[0]);
  const head = h("div");
  const body = h("div");
  const line = h("section");
  main.append(head, body, line);
  let stop = null;
  let left = false;  // the page was left before the show arrived: mount nothing
  loading(head, () => get(`/schedules/${id}`), (show) => {
    if (left) return;
    document.title = `${show.play_name} — ${t("brand")}`;
    head.append(h("h1", {}, show.play_name),
      h("p", {}, t("show.when_where", { when: dateTime(show.starts_at),
        studio: show.studio_name }), " · ", t("show.price", { price: money(show.price) })),
      h("p", { class: "alert" }, show.status === "cancelled" ? t("show.cancelled") : ""));
    if (show.status !== "cancelled") {
      const waitlist = waitingList(line, id, { path, offered: (reservation) =>
        stop?.adopt(reservation, t("waitlist.offer_title")) });
      stop = mountSale(body, id, { show, onSeats: waitlist, onSignIn: () => {
        location.hash = "#/signin?next=" + encodeURIComponent(path);
      } });
    }
  });
  return () => {
    left = true;
    if (stop) stop();
  };
}
