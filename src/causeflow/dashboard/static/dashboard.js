// Small progressive enhancements for every page: copy buttons and confirmations.
// No inline handlers anywhere (the CSP allows only scripts served from this origin).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target) { return; }
      var text = target.textContent;
      var status = button.parentElement.querySelector(".copy-status");
      function done(message) { if (status) { status.textContent = message; } }
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(
          function () { done("Copied."); },
          function () { selectText(target); done("Selected: press Ctrl+C to copy."); }
        );
      } else {
        selectText(target);
        done("Selected: press Ctrl+C to copy.");
      }
    });
  });
  document.querySelectorAll("select[data-destination-type]").forEach(function (select) {
    // Only the chosen type's option fields are shown (all are, without scripts).
    var form = select.form;
    function show() {
      form.querySelectorAll("fieldset[data-destination]").forEach(function (fieldset) {
        fieldset.hidden = fieldset.getAttribute("data-destination") !== select.value;
      });
    }
    select.addEventListener("change", show);
    show();
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
});

function selectText(node) {
  var range = document.createRange();
  range.selectNodeContents(node);
  var selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}
