/* Behaviour that Flask-Admin's templates wire with inline handlers, bound here instead because
   the Content-Security-Policy forbids inline script (see templates/admin/*). */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-confirm], [data-model-action], [data-inline-add], a[href^='javascript:']");
    if (!target) { return; }
    if (target.hasAttribute("data-confirm")) {
      if (!window.confirm(target.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopPropagation();
      }
      return;
    }
    event.preventDefault();
    if (target.hasAttribute("data-model-action") && window.modelActions) {
      window.modelActions.execute(target.getAttribute("data-model-action"));
    } else if (target.hasAttribute("data-inline-add") && window.faForm) {
      window.faForm.addInlineField(target, target.getAttribute("data-inline-add"));
    }
  }, true);
})();
