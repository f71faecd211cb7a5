// Tells the server the browser's time zone (cookie playbook_tz), so that pages show times
// in the viewer's zone when the team roster does not set one. The only script of the UI;
// without it times are shown in UTC.
(function () {
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && document.cookie.indexOf("playbook_tz=" + zone) === -1) {
    document.cookie = "playbook_tz=" + zone + "; path=/; max-age=31536000; samesite=lax";
  }
})();
