// The door (clerk+): type or scan a ticket's code, get a big clear admitted / refused answer
// from POST /checkins. The camera is used through the browser's BarcodeDetector where it has
// one; elsewhere a USB or phone scanner that types the code into the field works the same.
import { post } from "../api.js";
import { dateTime, seatName, t } from "../i18n.js";
import { describe, field, h } from "../ui.js";

const REFUSALS = ["already_checked_in", "ticket_refunded", "wrong_show", "checkin_closed",
  "invalid_code"];

export function render(main) {
  const code = h("input", { name: "code", autocomplete: "off", spellcheck: "false",
    autocapitalize: "off", required: true });
  const show = h("input", { name: "schedule_id", inputmode: "numeric", pattern: "[0-9]*" });
  const answer = h("div", { class: "door-answer", role: "status", "aria-live": "assertive" });
  const form = h("form", { novalidate: true },
    field(t("door.code"), code), field(t("door.show"), show),
    h("button", { type: "submit" }, t("door.check")));
  let busy = false;

  async function check(text) {
    if (busy || !text.trim()) return;
    busy = true;
    const body = { code: text.trim() };
    if (/^\d+$/.test(show.value.trim())) body.schedule_id = Number(show.value.trim());
    try {
      const done = await post("/checkins", body);
      answer.className = "door-answer admitted";
      answer.replaceChildren(h("strong", {}, t("door.admitted")),
        h("span", {}, seatName(done.ticket.row, done.ticket.col)));
    } catch (error) {
      answer.className = "door-answer refused";
      const why = REFUSALS.includes(error.code)
        ? t("door." + error.code, { when: error.body.errors
          ? dateTime(error.body.errors[0].msg) : "" })
        : describe(error);
      answer.replaceChildren(h("strong", {}, t("door.refused")), h("span", {}, why));
    } finally {
      busy = false;
      code.value = "";
      code.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    check(code.value);
  });
  main.append(h("h1", {}, t("door.title")), form, answer);

  let stop = null;
  if ("BarcodeDetector" in window && navigator.mediaDevices) {
    const video = h("video", { playsinline: true, muted: true, class: "door-camera",
      "aria-label": t("door.camera") });
    const button = h("button", { type: "button", class: "secondary", onclick: async () => {
      if (stop) { stop(); return; }
      const stream = await navigator.mediaDevices.getUserMedia(
        { video: { facingMode: "environment" } });
      video.srcObject = stream;
      await video.play();
      const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      let last = "";
      const timer = setInterval(async () => {
        const found = await detector.detect(video).catch(() => []);
        if (found.length && found[0].rawValue !== last) {
          last = found[0].rawValue;
          check(last);
        }
      }, 300);
      stop = () => {
        clearInterval(timer);
        stream.getTracks().forEach((track) => track.stop());
        video.srcObject = null;
        stop = null;
      };
    } }, t("door.camera"));
    main.append(button, video);
  }
  code.focus();
  return () => { if (stop) stop(); };
}
