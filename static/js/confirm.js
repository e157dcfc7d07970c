// Ask before a destructive submit. The question is read from a data-confirm attribute on the form
// or on the button that submits it, so names and emails in it are only ever text, never code.
(function () {
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();  // htmx listens on the form; it must not send it either
    }
  }, true);
})();
