// Show Django messages as Bootstrap toasts, on page load and after htmx swaps them in.
(function () {
  function showToasts(root) {
    (root || document).querySelectorAll("#toasts .toast:not(.showing):not(.show)").forEach(function (el) {
      bootstrap.Toast.getOrCreateInstance(el).show();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { showToasts(document); });
  document.body && document.body.addEventListener("htmx:afterSwap", function () { showToasts(document); });
})();
