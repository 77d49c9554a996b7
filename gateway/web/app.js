// The shell: header (navigation by role, language, sign in/out, a waiting-list offer held for
// the person) and a hash router that hands the <main> element to one page module at a time.
import { get, session } from "./api.js";
import { LANGUAGES, lang, setLanguage, t, time } from "./i18n.js";
import { h } from "./ui.js";
import "./seatmap.js";

const PAGES = [
  // [pattern, module, the least role (null: anyone), nav label key]
  [/^$/, "./pages/shows.js", null, "nav.shows"],
  [/^show\/(\d+)$/, "./pages/show.js", null],
  [/^signin$/, "./pages/signin.js", null],
  [/^register$/, "./pages/signin.js", null],
  [/^reset$/, "./pages/reset.js", null],
  [/^account$/, "./pages/account.js", "customer", "nav.account"],
  [/^ticket\/(\d+)$/, "./pages/ticket.js", "customer"],
  [/^box-office$/, "./pages/boxoffice.js", "clerk", "nav.boxoffice"],
  [/^door$/, "./pages/door.js", "clerk", "nav.door"],
  [/^studios$/, "./pages/studios.js", "manager", "nav.studios"],
  [/^studios\/(\d+)$/, "./pages/studios.js", "manager"],
  [/^programme$/, "./pages/programme.js", "manager", "nav.programme"],
  [/^dashboard$/, "./pages/dashboard.js", "manager", "nav.dashboard"],
  [/^users$/, "./pages/users.js", "admin", "nav.users"],
  [/^audit$/, "./pages/audit.js", "admin", "nav.audit"],
];

const main = document.getElementById("main");
let cleanup = null;
let rendering = 0;

export function go(path) {
  location.hash = "#/" + path;
}

function current() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search), raw };
}

function header() {
  const { path } = current();
  const user = session.user;
  const links = PAGES.filter(([, , role, label]) => label && (!role || session.has(role)))
    .map(([pattern, , , label]) => {
      const href = pattern.source.replace(/[\^$\\]/g, "");
      const here = href === path || (href && path.startsWith(href + "/"));
      return h("li", {}, h("a", { href: "#/" + href, "aria-current": here ? "page" : null },
        t(label)));
    });
  const language = h("select", { "aria-label": t("language"), id: "language",
    onchange: (event) => setLanguage(event.target.value) },
  LANGUAGES.map(([code, name]) => h("option", { value: code, selected: code === lang,
    lang: code }, name)));
  const who = user
    ? [h("span", {}, t("signed_in_as", { name: user.username, role: t("role." + user.role) })),
      h("button", { type: "button", class: "secondary", onclick: signOut }, t("action.signout"))]
    : [h("a", { href: "#/signin" }, t("action.signin")),
      h("a", { href: "#/register" }, t("action.register"))];
  document.getElementById("top").replaceChildren(
    h("a", { href: "#/", class: "brand" }, t("brand")),
    h("nav", { "aria-label": t("nav.label") }, h("ul", {}, links)),
    h("div", { class: "who" }, language, ...who), offers);
}

// Seats held for the person from a waiting list (waitlist.offered), said on every page but
// that show's own (which shows the hold itself); read at each page change.
const offers = h("div", { class: "offers", role: "status" });

async function findOffers(path) {
  if (!session.user) return offers.replaceChildren();
  try {
    const entries = (await get("/waitlist?page_size=20")).items
      .filter((e) => e.status === "offered" && e.reservation_id
        && path !== `show/${e.schedule_id}`);
    const held = (await Promise.all(entries.map(async (entry) => {
      const [reservation, show] = await Promise.all([
        get(`/reservations/${entry.reservation_id}`), get(`/schedules/${entry.schedule_id}`)]);
      return reservation.status === "held" ? [show, reservation] : null;
    }))).filter(Boolean);
    offers.replaceChildren(...held.map(([show, reservation]) => h("p", { class: "note" },
      h("a", { href: `#/show/${show.id}` }, t("waitlist.notice", { play: show.play_name,
        until: time(reservation.expires_at) })))));
  } catch { offers.replaceChildren(); }
}

function signOut() {
  session.forget();
  go("signin");
}

async function render() {
  const ticket = ++rendering;
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  const { path, query } = current();
  header();
  findOffers(path);
  document.title = t("brand");
  const match = PAGES.map(([pattern, module, role]) => [path.match(pattern), module, role])
    .find(([m]) => m);
  if (!match) {
    main.replaceChildren(h("h1", {}, t("notfound")), h("a", { href: "#/" }, t("nav.shows")));
    return;
  }
  const [groups, module, role] = match;
  if (role && !session.user) {
    go("signin?next=" + encodeURIComponent(current().raw));
    return;
  }
  if (role && !session.has(role)) {
    main.replaceChildren(h("h1", {}, t("forbidden")));
    return;
  }
  const page = await import(module);
  if (ticket !== rendering) return;
  main.replaceChildren();
  cleanup = page.render(main, { params: groups.slice(1), query, path }) || null;
}

window.addEventListener("hashchange", render);
window.addEventListener("ttms:language", render);
window.addEventListener("ttms:session", header);
window.addEventListener("ttms:unauthorized", () => {
  const { raw, path } = current();
  if (path === "signin") return;
  go("signin?expired=1&next=" + encodeURIComponent(raw));
});

// A stored session is checked once at start (the user may have been disabled meanwhile).
if (session.token) {
  get("/users/me").then((user) => session.save(session.token, user)).catch(() => {});
}
render();
