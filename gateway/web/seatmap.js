// <seat-map>: a show's seats drawn as in the hall. Each seat is a toggle button named
// "Row R, seat C" (aria-pressed: selected; aria-disabled: taken); aisles and broken places are
// not controls. Arrow keys move between seats (one tab stop: roving tabindex), Space or Enter
// selects. Fires "change" when the selection changes. Built for 10,000 places: one string of
// HTML at load, one event listener, and updates that touch only the seats that changed.
import { money, seatName, t } from "./i18n.js";

const escape = (text) => String(text).replace(/[&<>"]/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

class SeatMap extends HTMLElement {
  constructor() {
    super();
    this.rows = 0;
    this.cols = 0;
    this.max = 10;
    this.cells = [];          // index row*cols+col → {row, col, status, price, broken}
    this.buttons = [];        // index → button element or null
    this.selected = new Set(); // indexes
    this.focusIndex = -1;
  }

  /** data: the API's seats for sale ({rows, cols, seats}); broken: Set of "r:c" (optional). */
  load(data, { broken = new Set(), currency } = {}) {
    this.rows = data.rows;
    this.cols = data.cols;
    this.noSingleGaps = !!data.no_single_gaps;
    this.currency = currency;
    this.cells = new Array(this.rows * this.cols);
    for (const seat of data.seats) {
      const index = (seat.row - 1) * this.cols + (seat.col - 1);
      this.cells[index] = { ...seat, broken: broken.has(`${seat.row}:${seat.col}`) };
    }
    this.selected = new Set([...this.selected].filter((i) => this.cells[i]?.status === "available"));
    this.draw();
  }

  draw() {
    const started = performance.now();
    const seats = this.cells.filter((c) => c && c.status !== "unavailable");
    const prices = new Set(seats.map((c) => c.price));
    // Price zones (issue 20.1): each zone's price in the legend, and on each seat's title.
    const zones = new Map(seats.map((c) => [c.zone || "", c.price]));
    const priceNote = zones.size > 1 || !zones.has("")
      ? [...zones].sort((a, b) => b[1] - a[1]).map(([zone, price]) => t(
        zone ? "legend.zone" : "legend.nozone", { zone, price: money(price, this.currency) }))
        .join(" · ")
      : t("legend.price", { price: [...prices].sort((a, b) => a - b)
        .map((p) => money(p, this.currency)).join(" / ") || "—" });
    const small = this.cols > 40;
    const parts = [];
    let first = -1;
    for (let r = 1; r <= this.rows; r++) {
      parts.push(`<span class="rowlabel" aria-hidden="true">${r}</span>`);
      for (let c = 1; c <= this.cols; c++) {
        const i = (r - 1) * this.cols + (c - 1);
        const cell = this.cells[i];
        if (!cell || cell.status === "unavailable") {
          parts.push(cell && cell.broken
            ? `<span class="broken" title="${escape(t("seat.broken"))}" aria-hidden="true">×</span>`
            : `<span class="gap" aria-hidden="true"></span>`);
          continue;
        }
        const taken = cell.status !== "available";
        if (first < 0 && !taken) first = i;
        parts.push(`<button type="button" class="seat" data-i="${i}" tabindex="-1" `
          + `aria-label="${escape(seatName(r, c))}" aria-pressed="${this.selected.has(i)}" `
          + `title="${escape((cell.zone ? cell.zone + " · " : "") + money(cell.price, this.currency))}"`
          + `${taken ? ' aria-disabled="true"' : ""}>${small ? "" : c}</button>`);
      }
    }
    const legend = [["available", t("legend.available")], ["selected", t("legend.selected")],
      ["taken", t("legend.taken")], ["broken", t("legend.broken")], ["aisle", t("legend.aisle")]];
    this.innerHTML = `<ul class="legend" aria-label="${escape(t("legend"))}">`
      + legend.map(([k, text]) => `<li><span class="swatch ${k}" aria-hidden="true"></span>`
        + `${escape(text)}</li>`).join("")
      + `<li>${escape(priceNote)}</li></ul>`
      + `<div class="seat-scroll"><div class="seat-inner">`
      + `<p class="screen" aria-hidden="true">${escape(t("screen"))}</p>`
      + `<div class="seat-grid${small ? " small" : ""}" role="group" `
      + `aria-label="${escape(t("seatmap.label"))}"></div></div></div>`;
    const grid = this.querySelector(".seat-grid");
    grid.style.gridTemplateColumns = `auto repeat(${this.cols}, max-content)`;
    grid.innerHTML = parts.join("");
    this.buttons = new Array(this.rows * this.cols).fill(null);
    for (const button of grid.querySelectorAll("button")) this.buttons[+button.dataset.i] = button;
    if (this.focusIndex < 0 || !this.buttons[this.focusIndex]) this.focusIndex = first >= 0
      ? first : this.buttons.findIndex((b) => b);
    if (this.focusIndex >= 0) this.buttons[this.focusIndex].tabIndex = 0;
    this.drawMs = performance.now() - started;  // read by the 100×100 test
    grid.addEventListener("click", (event) => this.onClick(event));
    grid.addEventListener("keydown", (event) => this.onKey(event));
    grid.addEventListener("focusin", (event) => {
      const seat = event.target.closest("button.seat");
      if (seat && +seat.dataset.i !== this.focusIndex) this.moveFocus(+seat.dataset.i, false);
    });
  }

  /** New statuses from the API (a poll): only seats whose status changed are touched. */
  update(data) {
    if (data.rows !== this.rows || data.cols !== this.cols) return this.load(data);
    if ("no_single_gaps" in data) this.noSingleGaps = !!data.no_single_gaps;
    const lost = [];
    for (const seat of data.seats) {
      const i = (seat.row - 1) * this.cols + (seat.col - 1);
      const cell = this.cells[i];
      if (!cell || cell.status === seat.status) continue;
      cell.status = seat.status;
      const button = this.buttons[i];
      if (!button) continue;
      if (seat.status === "available") button.removeAttribute("aria-disabled");
      else {
        button.setAttribute("aria-disabled", "true");
        if (this.selected.delete(i)) {
          button.setAttribute("aria-pressed", "false");
          lost.push(cell);
        }
      }
    }
    if (lost.length) this.changed(lost);
    return lost;
  }

  onClick(event) {
    const button = event.target.closest("button.seat");
    if (!button) return;
    const i = +button.dataset.i;
    this.moveFocus(i, false);
    if (button.getAttribute("aria-disabled") === "true") return;
    if (this.selected.has(i)) this.selected.delete(i);
    else if (this.selected.size >= this.max) {
      this.dispatchEvent(new CustomEvent("limit", { detail: this.max }));
      return;
    } else this.selected.add(i);
    button.setAttribute("aria-pressed", String(this.selected.has(i)));
    this.changed([]);
  }

  onKey(event) {
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const move = moves[event.key];
    const from = event.target.closest("button.seat");
    if (!move || !from) return;
    event.preventDefault();
    if (+from.dataset.i !== this.focusIndex) this.moveFocus(+from.dataset.i, false);
    let r = Math.floor(this.focusIndex / this.cols);
    let c = this.focusIndex % this.cols;
    for (;;) {
      r += move[0];
      c += move[1];
      if (r < 0 || c < 0 || r >= this.rows || c >= this.cols) return;
      const i = r * this.cols + c;
      if (this.buttons[i]) return this.moveFocus(i, true);
    }
  }

  moveFocus(i, focus) {
    if (this.focusIndex >= 0 && this.buttons[this.focusIndex]) {
      this.buttons[this.focusIndex].tabIndex = -1;
    }
    this.focusIndex = i;
    this.buttons[i].tabIndex = 0;
    if (focus) this.buttons[i].focus();
  }

  changed(lost) {
    this.dispatchEvent(new CustomEvent("change", { detail: { lost } }));
  }

  /** The selected seats, in order: [{row, col, price}]. */
  get seats() {
    return [...this.selected].sort((a, b) => a - b).map((i) => this.cells[i]);
  }

  clear() {
    for (const i of this.selected) this.buttons[i]?.setAttribute("aria-pressed", "false");
    this.selected.clear();
    this.changed([]);
  }
}

customElements.define("seat-map", SeatMap);
