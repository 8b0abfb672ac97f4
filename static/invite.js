// Accepting an invitation: choose a password, then straight in.
const f = document.getElementById("invite");
f.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const v = kura.form(f);
  if (v.password !== v.confirm) return kura.say("The two passwords differ.", "error");
  try {
    await kura.api("POST", "/api/auth/accept-invite", {
      token: f.dataset.token, password: v.password, display_name: v.display_name,
    });
    location.href = "/settings/account";
  } catch (e) { kura.fail(e); }
});
