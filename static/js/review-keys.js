// Keyboard review: J/→ and K/← move between cells, A/N/X decide the current cell and move on,
// U goes to the next undecided cell from the current one (the current one itself when it is
// undecided). A decision shows at once as pending and counts once the server stored it
// (decisions.js); on a signed-off sample it waits for the amendment's reason first.
import { decide } from "./decisions.js";
import { el, setStatus } from "./dom.js";
import { narrowScreen, select } from "./gallery.js";
import { galleryOrder, isDecided, state } from "./state.js";

const cellsInOrder = () => galleryOrder().filter((row) => row.status === "ok");

function move(step, { reveal = false } = {}) {
  const order = cellsInOrder();
  if (!order.length) return;
  const at = order.findIndex((row) => row.key === state.selectedKey);
  const next = at < 0 ? 0 : Math.min(order.length - 1, Math.max(0, at + step));
  select(order[next].key, { focus: true, reveal });
}

// From the current cell on, wrapping round: the first without a decision.
export function nextUndecided() {
  const order = cellsInOrder();
  const at = Math.max(0, order.findIndex((row) => row.key === state.selectedKey));
  const next = [...order.slice(at), ...order.slice(0, at)].find((row) => !isDecided(row));
  if (next) {
    select(next.key, { focus: true, reveal: narrowScreen() });
  } else {
    setStatus("Every cell of this sample has a decision.");
  }
}

// Decides the current cell and moves on. On a phone the next cell's detail (and its buttons)
// stays in view; the gallery is not scrolled to. An amendment moves on once its reason is
// given, unless the reviewer went elsewhere meanwhile.
export function decideCurrent(decision) {
  const key = state.selectedKey;
  const moveOn = (queued) => {
    if (queued && state.selectedKey === key) move(1, { reveal: narrowScreen() });
  };
  const queued = decide(key, decision);
  if (queued instanceof Promise) queued.then(moveOn);
  else moveOn(queued);
}

function typing(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

export function wireReviewKeys() {
  document.addEventListener("keydown", (event) => {
    if (el.workstation.hidden || document.querySelector("dialog[open]")
      || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(event.target)) return;
    const key = event.key.toLowerCase();
    const actions = {
      j: () => move(1), arrowright: () => move(1), k: () => move(-1), arrowleft: () => move(-1),
      a: () => decideCurrent("ALL"), n: () => decideCurrent("HEM"),
      x: () => decideCurrent("not_assessable"), u: () => nextUndecided(),
    };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  });
}
