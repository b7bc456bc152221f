/* Submit a form when one of its <select data-autosubmit> changes (the language switch, the
 * worklist's site filter). Replaces inline onchange handlers, which the content security
 * policy forbids. Without JavaScript the forms keep their submit button. */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("select[data-autosubmit]") && target.form) {
      target.form.submit();
    }
  });
})();
