// The forced password change after a temporary password.
const f = document.getElementById("setup");
f.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const v = kura.form(f);
  if (v.new_password !== v.confirm) return kura.say("The two new passwords differ.", "error");
  try {
    await kura.api("POST", "/api/auth/change-password", {
      current_password: v.current_password, new_password: v.new_password,
    });
    location.href = kura.next();
  } catch (e) { kura.fail(e); }
});
