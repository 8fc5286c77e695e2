// The theme, set before first paint (loaded as a blocking script from the page's head): a
// dark-theme user never sees a white flash. A file, not an inline script: the page's
// Content-Security-Policy allows scripts from this origin only.
document.documentElement.dataset.theme = localStorage.getItem("skein.theme") ||
  (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
