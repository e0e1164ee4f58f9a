// freshet browser client: one dependency-free file, served by every freshet server at
// /_freshet/freshet.js. (Being written: see docs/CLIENT.md once it lands.)
