/* Behaviour shared by every dashboard page, kept out of the templates so that the
 * Content-Security-Policy can forbid inline scripts and event handlers. */
(function () {
  "use strict";

  // <form data-confirm="Question?">: asks before submitting; Cancel keeps the page as it is.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form instanceof HTMLFormElement ? form.getAttribute("data-confirm") : null;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
