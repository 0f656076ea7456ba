// Refuse an oversized photo before the form is sent, so nothing typed is lost to the server's limit.
// The server checks again; without this script nginx answers with a page stating the limit.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var input = document.getElementById("photo");
  var message = document.getElementById("photo-error");
  if (!input || !message) {
    return;
  }
  var limit = Number(input.dataset.maxBytes);
  function check() {
    var file = input.files && input.files[0];
    var text = "";
    if (file && limit && file.size > limit) {
      text = "This photo is too large: choose one of at most " + input.dataset.maxSize + ".";
    }
    input.setCustomValidity(text);
    message.textContent = text;
    if (text) {
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
  }
  input.addEventListener("change", check);
});
