// banksync console: asks before a form marked data-confirm is sent (revoke, delete).
// Served from /console/assets (the pages' Content-Security-Policy allows no inline script).
document.addEventListener("submit", function (e) {
  var msg = e.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    e.preventDefault();
  }
});
