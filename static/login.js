// The sign-in page: password step, then (when enrolled) the code step; a lockout shows a countdown.
const pw = document.getElementById("password-step");
const code = document.getElementById("code-step");
let timer = null;

function countdown(seconds) {
  clearInterval(timer);
  const button = pw.querySelector("button");
  button.disabled = true;
  let left = seconds;
  const tick = () => {
    if (left <= 0) {
      clearInterval(timer);
      button.disabled = false;
      kura.say("You can try again now.");
      return;
    }
    const m = Math.floor(left / 60), s = String(left % 60).padStart(2, "0");
    kura.say(`Too many failed sign-ins. Try again in ${m}:${s}.`, "error");
    left -= 1;
  };
  tick();
  timer = setInterval(tick, 1000);
}

function done(answer) {
  location.href = answer.must_change_password ? "/setup?next=" + encodeURIComponent(kura.next()) : kura.next();
}

function handle(e) {
  if (e.status === 423 || (e.status === 429 && e.retry_after)) countdown(e.retry_after);
  else kura.fail(e);
}

pw.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  kura.say("");
  try {
    const answer = await kura.api("POST", "/api/auth/login", kura.form(pw));
    if (answer.requires_2fa) {
      pw.hidden = true;
      code.hidden = false;
      code.querySelector("input").focus();
    } else {
      done(answer);
    }
  } catch (e) { handle(e); }
});

code.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    done(await kura.api("POST", "/api/auth/2fa/verify", kura.form(code)));
  } catch (e) {
    if (e.error === "two_factor_expired" || e.error === "no_pending_sign_in") {
      code.hidden = true;
      pw.hidden = false;
    }
    handle(e);
  }
});
