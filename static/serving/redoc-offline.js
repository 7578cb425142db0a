// ReDoc's menu footer always shows Redocly's logo from https://cdn.redoc.ly (no option turns it
// off). An offline install must not reach out, and a blocked image is a console error under
// the page's Content-Security-Policy: an <img> pointed there gets an empty data: URL instead,
// whose load error makes ReDoc hide the logo itself. Loaded before redoc.standalone.js.
(function () {
  "use strict";
  const OUTSIDE = "https://cdn.redoc.ly/";
  const local = (value) => (String(value).startsWith(OUTSIDE) ? "data:," : value);

  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    const isImageSource = this instanceof HTMLImageElement && String(name).toLowerCase() === "src";
    return setAttribute.call(this, name, isImageSource ? local(value) : value);
  };
  const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    ...src,
    set(value) {
      src.set.call(this, local(value));
    },
  });
})();
