// SQL (and Jinja) as highlighted HTML: one tokenizer for the SQL page's editor and the
// model pages. `errorAt` (a character offset) marks the token there.
const KEYWORDS = new Set(("select from where group by order having limit offset join left right full inner outer cross on using as " +
  "and or not in is null like ilike between case when then else end distinct union all except intersect with recursive " +
  "asc desc nulls first last over partition window filter qualify cast try_cast true false exists any some values " +
  "describe summarize pivot unpivot interval date timestamp lateral natural semi anti asof").split(" "));

export const esc = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const TOKEN = /(\{\{[\s\S]*?(?:\}\}|$)|\{%[\s\S]*?(?:%\}|$)|\{#[\s\S]*?(?:#\}|$))|(--[^\n]*|\/\*[\s\S]*?(?:\*\/|$))|('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_]*)|([\s\S])/g;

export function highlightSql(text, errorAt = null) {
  let html = "";
  for (const m of text.matchAll(TOKEN)) {
    const [tok, jinja, comment, str, ident, num, word] = m;
    let piece = esc(tok);
    if (jinja) piece = `<span class="t-jinja">${piece}</span>`;
    else if (comment) piece = `<span class="t-comment">${piece}</span>`;
    else if (str) piece = `<span class="t-string">${piece}</span>`;
    else if (ident) piece = `<span class="t-ident">${piece}</span>`;
    else if (num) piece = `<span class="t-number">${piece}</span>`;
    else if (word && KEYWORDS.has(word.toLowerCase())) piece = `<span class="t-keyword">${piece}</span>`;
    if (errorAt !== null && m.index <= errorAt && errorAt < m.index + tok.length) piece = `<mark class="t-error">${piece}</mark>`;
    html += piece;
  }
  if (errorAt !== null && errorAt >= text.length) html += `<mark class="t-error"> </mark>`;
  return html;
}
