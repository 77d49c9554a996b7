// Text and numbers in one place: t() reads the language's string catalogue; money, dates and
// numbers are formatted here and nowhere else. The language is remembered in localStorage.
// The catalogues are data, one JSON object per language (strings/<lang>.json) with the same
// keys: every text the app shows, "{name}" marking where a value goes.
import en from "./strings/en.json" with { type: "json" };
import zh from "./strings/zh-CN.json" with { type: "json" };

const CATALOGUES = { en, "zh-CN": zh };
export const LANGUAGES = [["en", "English"], ["zh-CN", "简体中文"]];
// Money on the wire is integer minor units; answers that carry `currency` say which. The seat
// map's answer does not: this is the server's default (TTMS_CURRENCY).
export const DEFAULT_CURRENCY = "CNY";
const KEY = "ttms.lang";

function initial() {
  const saved = localStorage.getItem(KEY);
  if (saved && CATALOGUES[saved]) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export let lang = initial();
document.documentElement.lang = lang;

export function setLanguage(code) {
  if (!CATALOGUES[code] || code === lang) return;
  lang = code;
  localStorage.setItem(KEY, code);
  document.documentElement.lang = code;
  window.dispatchEvent(new Event("ttms:language"));
}

/** The text for `key`, its {placeholders} filled from `params`. */
export function t(key, params = {}) {
  let text = CATALOGUES[lang][key] ?? en[key];
  if (text === undefined) {
    console.warn("missing string", key);
    return key;
  }
  if (typeof text === "function") return text(params);
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

/** Whether the current language has its own text for `key` (not the English fallback). */
export function has(key) {
  return CATALOGUES[lang][key] !== undefined;
}

export function seatName(row, col) {
  return t("seat.name", { row, col });
}

const moneyFormats = new Map();
export function money(minor, currency = DEFAULT_CURRENCY) {
  const key = lang + currency;
  let format = moneyFormats.get(key);
  if (!format) {
    format = new Intl.NumberFormat(lang, { style: "currency", currency });
    moneyFormats.set(key, format);
  }
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

/** Major units typed by a person (e.g. "80.5") → integer minor units. */
export function toMinor(text, currency = DEFAULT_CURRENCY) {
  const digits = new Intl.NumberFormat("en", { style: "currency", currency })
    .resolvedOptions().maximumFractionDigits;
  const value = Number(String(text).replace(",", "."));
  return Number.isFinite(value) ? Math.round(value * 10 ** digits) : NaN;
}

export function fromMinor(minor, currency = DEFAULT_CURRENCY) {
  const digits = new Intl.NumberFormat("en", { style: "currency", currency })
    .resolvedOptions().maximumFractionDigits;
  return (minor / 10 ** digits).toFixed(digits);
}

export function number(value) {
  return new Intl.NumberFormat(lang).format(value);
}

export function percent(value) {
  return value == null ? "—" : new Intl.NumberFormat(lang, { style: "percent",
    maximumFractionDigits: 1 }).format(value);
}

export function dateTime(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" })
    .format(new Date(iso));
}

export function time(iso) {
  return new Intl.DateTimeFormat(lang, { timeStyle: "medium" }).format(new Date(iso));
}

export function day(iso) {
  if (!iso) return "—";
  // A plain date (YYYY-MM-DD) is a calendar day, not an instant: format it in UTC.
  const date = /^\d{4}-\d{2}-\d{2}$/.test(iso) ? new Date(iso + "T00:00:00Z") : new Date(iso);
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium",
    timeZone: /^\d{4}-\d{2}-\d{2}$/.test(iso) ? "UTC" : undefined }).format(date);
}

export function duration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
