// Bastion dashboard: small progressive enhancements (everything works without them).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: <button data-copy="#input-id">.
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.querySelector(button.dataset.copy);
      const status = document.getElementById(button.getAttribute("aria-describedby") || "");
      if (!source) return;
      let copied = false;
      try {
        await navigator.clipboard.writeText(source.value);
        copied = true;
      } catch (error) {
        source.select();
      }
      if (status) {
        status.textContent = copied ? "Copied to the clipboard." : "Selected: press Ctrl+C (⌘C) to copy.";
      }
    });
  }
  // The new key's field selects itself, so a keyboard user can copy it at once.
  for (const field of document.querySelectorAll("[data-select-on-focus]")) {
    field.addEventListener("focus", () => field.select());
  }
  // After a failed submit, move focus to the error summary so it is read first.
  const summary = document.querySelector("[data-autofocus]");
  if (summary) summary.focus();
});
