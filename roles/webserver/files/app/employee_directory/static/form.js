// The app's one script. Every page works without it; with it:
// - every field's error shows at once when a form is sent incomplete (the browser's own check shows one);
// - a photo over the limit is refused before the form is sent, so nothing typed is lost to the server's limit
//   (without the script nginx answers with a page stating the limit);
// - a form's submit buttons are disabled while it is sent, so a second click sends nothing (the server also
//   answers a repeated form as it answered the first, by its one-time token).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var photo = document.getElementById("photo");
  var photoMessage = document.getElementById("photo-error");

  function showError(input, text) {
    var message = document.getElementById(input.id + "-error");
    if (message) {
      message.textContent = text;
    }
    if (text) {
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
  }

  function checkPhoto() {
    var limit = Number(photo.dataset.maxBytes);
    var file = photo.files && photo.files[0];
    var text = "";
    if (file && limit && file.size > limit) {
      text = "This photo is too large: choose one of at most " + photo.dataset.maxSize + ".";
    }
    photo.setCustomValidity(text);
    showError(photo, text);
  }
  if (photo && photoMessage) {
    photo.addEventListener("change", checkPhoto);
  }

  // The same words as the server's messages.
  function problem(input) {
    var label = document.querySelector('label[for="' + input.id + '"]');
    var name = label ? label.textContent : input.name;
    if (input.validity.valueMissing) {
      return name + " is required.";
    }
    if (input.validity.typeMismatch && input.type === "email") {
      return "Email must be an address like name@example.com.";
    }
    return input.validationMessage;
  }

  document.querySelectorAll("form[novalidate]").forEach(function (form) {
    var fields = Array.prototype.filter.call(form.elements, function (element) {
      return element.tagName === "INPUT" && element.type !== "hidden" && element.id;
    });
    fields.forEach(function (input) {
      input.addEventListener("input", function () {
        if (input.getAttribute("aria-invalid") && input.checkValidity()) {
          showError(input, "");
        }
      });
    });
    form.addEventListener("submit", function (event) {
      var invalid = fields.filter(function (input) {
        return !input.checkValidity();
      });
      fields.forEach(function (input) {
        showError(input, input.checkValidity() ? "" : problem(input));
      });
      if (invalid.length) {
        event.preventDefault();
        invalid[0].focus();
      }
    });
  });

  document.querySelectorAll('form[method="post"]').forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (event.defaultPrevented) {
        return;
      }
      if (form.dataset.sending) {
        event.preventDefault();
        return;
      }
      form.dataset.sending = "true";
      form.querySelectorAll('button[type="submit"]').forEach(function (button) {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
      });
    });
  });

  // Back to a page the browser kept as it was (bfcache): its forms can be sent again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) {
      return;
    }
    document.querySelectorAll("form[data-sending]").forEach(function (form) {
      delete form.dataset.sending;
      form.querySelectorAll("button[disabled]").forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      });
    });
  });
});
