// Studios (manager): the list (with Delete), a new studio, and the seat-map editor: pick a
// kind (seat, aisle, broken) or a price zone, click or drag over cells to paint them, Save;
// resize the studio.
import { all, del, get, patch, post } from "../api.js";
import { number, t } from "../i18n.js";
import { alertBox, field, h, loading, onSubmit, showError, table, twoStepButton } from "../ui.js";

export function render(main, { params }) {
  if (params[0]) return editor(main, Number(params[0]));
  const list = h("div");
  main.append(h("h1", {}, t("studios.title")), list,
    h("h2", { id: "new-studio" }, t("studios.new")), newStudioForm());
  const load = () => loading(list, () => all("/studios", {}, 500), (studios) => {
    if (!studios.length) return list.append(h("p", {}, t("studios.none")));
    const box = alertBox();
    list.append(box, table([t("col.name"), t("col.size"), t("col.seat_count"), t("col.action")],
      studios.map((s) => [s.name, t("studios.size", { rows: s.rows, cols: s.cols }),
        number(s.seat_count), h("span", {}, h("a", { href: `#/studios/${s.id}`,
          "aria-label": `${t("action.edit")} ${s.name}` }, t("action.edit")), " ",
        twoStepButton(t("action.delete"), t("studios.confirm_delete"),
          `${t("action.delete")} ${s.name}`, { action: () => del(`/studios/${s.id}`), box,
            done: t("studios.deleted", { name: s.name }), then: load }))]),
      { numeric: [2] }));
  });
  load();
}

function newStudioForm() {
  const box = alertBox();
  const form = h("form", { novalidate: true, "aria-labelledby": "new-studio" },
    field(t("field.name"), h("input", { name: "name" })),
    field(t("field.rows"), h("input", { name: "rows", type: "number", min: 1, max: 100 })),
    field(t("field.cols"), h("input", { name: "cols", type: "number", min: 1, max: 100 })),
    field(t("field.description"), h("input", { name: "description" })),
    box, h("button", { type: "submit" }, t("action.create")));
  onSubmit(form, box, async (values) => {
    const body = { name: values.name, rows: Number(values.rows), cols: Number(values.cols) };
    if (values.description) body.description = values.description;
    const studio = await post("/studios", body);
    location.hash = `#/studios/${studio.id}`;
  });
  return form;
}

function editor(main, id) {
  const box = alertBox();
  const status = h("p", { role: "status" });
  const area = h("div");
  main.append(area);
  loading(area, () => Promise.all([get(`/studios/${id}`), get(`/studios/${id}/seats`)]),
    ([studio, plan]) => draw(studio, plan));

  function draw(studio, plan) {
    area.replaceChildren();
    const places = new Map(plan.seats.map((s) => [`${s.row}:${s.col}`, s]));
    const changed = new Map();
    let brush = "aisle";
    let painting = false;
    // Painting with the "zone" brush puts seats in the zone named here (empty: in none).
    const zoneName = h("input", { name: "zone", maxlength: 40, autocomplete: "off",
      list: "zone-names" });
    const zoneList = h("datalist", { id: "zone-names" });
    const zones = h("p", { role: "status", class: "muted" });
    const brushes = h("fieldset", {}, h("legend", {}, t("field.brush")),
      ["seat", "aisle", "broken", "zone"].map((kind) => h("label", {}, h("input", {
        type: "radio", name: "brush", value: kind, checked: kind === brush,
        onchange: () => { brush = kind; } }), t("kind." + kind))),
      field(t("field.zone"), zoneName), zoneList);
    const grid = h("div", { class: "editor-grid", role: "group",
      "aria-label": t("studios.editor", { name: studio.name }) });
    grid.style.gridTemplateColumns = `repeat(${plan.cols}, max-content)`;
    for (let r = 1; r <= plan.rows; r++) {
      for (let c = 1; c <= plan.cols; c++) {
        const place = places.get(`${r}:${c}`) || {};
        const cell = h("button", { type: "button", class: "cell",
          dataset: { row: r, col: c, kind: place.kind || "seat" } });
        if (place.zone) cell.dataset.zone = place.zone;
        label(cell);
        grid.append(cell);
      }
    }
    const drawZones = () => {
      const counts = new Map();
      const seats = grid.querySelectorAll('.cell[data-kind="seat"][data-zone]');
      for (const cell of seats) {
        counts.set(cell.dataset.zone, (counts.get(cell.dataset.zone) || 0) + 1);
      }
      const names = [...counts.keys()].sort();
      zoneList.replaceChildren(...names.map((name) => h("option", { value: name })));
      for (const cell of grid.querySelectorAll("[data-shade]")) delete cell.dataset.shade;
      for (const cell of seats) cell.dataset.shade = names.indexOf(cell.dataset.zone) % 6;
      zones.textContent = names.length
        ? t("studios.zones", { zones: names.map((name) => t("studios.zone_count",
          { zone: name, count: number(counts.get(name)) })).join(", ") })
        : t("studios.no_zones");
    };
    drawZones();
    const paint = (cell) => {
      if (!cell || !cell.classList.contains("cell")) return;
      const { row, col } = cell.dataset;
      const key = `${row}:${col}`;
      if (brush === "zone") {
        // Zones price seats: aisles and broken places are passed over.
        const zone = zoneName.value.trim();
        if (cell.dataset.kind !== "seat" || (cell.dataset.zone || "") === zone) return;
        if (zone) cell.dataset.zone = zone;
        else delete cell.dataset.zone;
        changed.set(key, { ...changed.get(key), row: Number(row), col: Number(col),
          kind: cell.dataset.kind, zone: zone || null });
        drawZones();
      } else {
        if (cell.dataset.kind === brush) return;
        cell.dataset.kind = brush;
        changed.set(key, { ...changed.get(key), row: Number(row), col: Number(col),
          kind: brush });
        drawZones();
      }
      label(cell);
      status.textContent = "";
    };
    grid.addEventListener("pointerdown", (event) => {
      const cell = event.target.closest(".cell");
      if (!cell) return;
      painting = true;
      if (cell.hasPointerCapture(event.pointerId)) cell.releasePointerCapture(event.pointerId);
      paint(cell);
      event.preventDefault();
    });
    grid.addEventListener("pointerover", (event) => {
      if (painting) paint(event.target.closest(".cell"));
    });
    const stop = () => { painting = false; };
    window.addEventListener("pointerup", stop);
    grid.addEventListener("click", (event) => {
      if (event.detail === 0) paint(event.target.closest(".cell")); // keyboard: Enter/Space
    });
    const save = h("button", { type: "button" }, t("action.save"));
    save.addEventListener("click", async () => {
      box.replaceChildren();
      if (!changed.size) return;
      try {
        await patch(`/studios/${id}/seats`, { seats: [...changed.values()] });
        changed.clear();
        const fresh = await get(`/studios/${id}`);
        status.textContent = `${t("studios.saved")} ${t("col.seat_count")}: ${number(fresh.seat_count)}`;
      } catch (error) {
        showError(box, error, { retry: () => save.click() });
      }
    });
    const detailsBox = alertBox();
    const details = h("form", { class: "inline", novalidate: true,
      "aria-label": t("studios.details") },
    field(t("field.name"), h("input", { name: "name", value: studio.name })),
    field(t("field.description"), h("input", { name: "description",
      value: studio.description || "" })),
    field(t("field.rows"), h("input", { name: "rows", type: "number", min: 1, max: 100,
      value: studio.rows })),
    field(t("field.cols"), h("input", { name: "cols", type: "number", min: 1, max: 100,
      value: studio.cols })),
    h("button", { type: "submit", class: "secondary" }, t("action.save_details")));
    onSubmit(details, detailsBox, async (values) => {
      // Only what changed: a resize is refused while the studio has upcoming shows.
      const body = {};
      if (values.name !== studio.name) body.name = values.name;
      if (values.description !== (studio.description || "")) {
        body.description = values.description || null;
      }
      if (Number(values.rows) !== studio.rows) body.rows = Number(values.rows);
      if (Number(values.cols) !== studio.cols) body.cols = Number(values.cols);
      if (!Object.keys(body).length) return;
      await patch(`/studios/${id}`, body);
      const [fresh, freshPlan] = await Promise.all([get(`/studios/${id}`),
        get(`/studios/${id}/seats`)]);
      window.removeEventListener("pointerup", stop);
      draw(fresh, freshPlan);
    });
    area.append(h("h1", {}, t("studios.editor", { name: studio.name })),
      h("p", {}, h("a", { href: "#/studios" }, t("studios.title"))),
      details, detailsBox, h("p", { class: "muted" }, t("studios.help")), brushes, zones,
      h("div", { class: "seat-scroll" }, grid), box, h("p", {}, save), status);
  }
}

/** A cell's text and name from its kind and zone: "Row 2, place 3: Seat, zone Stalls". */
function label(cell) {
  const { row, col, kind, zone } = cell.dataset;
  cell.textContent = kind === "broken" ? "×" : kind === "seat" && zone ? zone[0] : "";
  cell.setAttribute("aria-label", t(zone && kind === "seat" ? "cell.name_zone" : "cell.name",
    { row, col, kind: t("kind." + kind), zone }));
}
