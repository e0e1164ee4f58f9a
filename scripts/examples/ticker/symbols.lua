-- The 100 made-up symbols of the ticker's market, with the price each starts the day at.
local M = {}

M.list = {
  { "DORC", 40.86 }, { "KUB", 455.3 }, { "BALV", 39.58 }, { "NOB", 414.29 }, { "FUB", 290.67 },
  { "BEBI", 429.94 }, { "LENF", 287.6 }, { "CUPL", 189.34 }, { "PAP", 106.95 }, { "TIMO", 462.1 },
  { "GETK", 351.0 }, { "CUGE", 250.08 }, { "SOGU", 490.19 }, { "NOD", 379.78 }, { "ZOLC", 481.2 },
  { "TUP", 395.6 }, { "KIPA", 292.05 }, { "CAGA", 350.04 }, { "BIR", 291.08 }, { "GOZS", 16.17 },
  { "KEPF", 249.38 }, { "TIDM", 201.96 }, { "CEMT", 276.97 }, { "VOVI", 142.82 }, { "KOFG", 46.08 },
  { "FEBA", 416.39 }, { "GIBG", 212.38 }, { "PUKG", 346.79 }, { "MUL", 202.04 }, { "CORT", 35.81 },
  { "FOD", 59.41 }, { "CAP", 79.88 }, { "VEP", 191.23 }, { "KUKA", 65.81 }, { "MOMP", 47.51 },
  { "SIS", 136.05 }, { "NAFE", 184.07 }, { "TUG", 489.36 }, { "SIN", 186.52 }, { "KENI", 390.63 },
  { "REPL", 404.01 }, { "SEFE", 248.93 }, { "BIM", 133.29 }, { "MIKD", 114.13 }, { "MEKL", 243.91 },
  { "MIT", 323.35 }, { "ZOT", 357.19 }, { "MELR", 47.94 }, { "MOSD", 363.78 }, { "DADO", 452.9 },
  { "PUMS", 82.18 }, { "BATF", 265.66 }, { "LEVL", 18.86 }, { "GUFO", 166.36 }, { "VEBS", 449.36 },
  { "VUDI", 80.16 }, { "VOT", 95.64 }, { "TED", 75.07 }, { "NAK", 342.75 }, { "TAZI", 33.13 },
  { "GATF", 256.32 }, { "TAM", 166.18 }, { "SIME", 268.98 }, { "NESE", 438.89 }, { "ZUZL", 420.8 },
  { "LALZ", 161.41 }, { "LAFP", 393.05 }, { "SIDN", 442.0 }, { "FALA", 85.58 }, { "DONK", 172.86 },
  { "KICS", 14.64 }, { "MALR", 261.13 }, { "NACM", 485.99 }, { "CIG", 24.6 }, { "GEVV", 425.55 },
  { "LENE", 287.44 }, { "CIBK", 215.53 }, { "GAR", 48.84 }, { "CUVM", 37.98 }, { "MAK", 497.18 },
  { "ZIPG", 26.39 }, { "CEGC", 94.67 }, { "RINL", 148.53 }, { "GITB", 497.28 }, { "BAS", 255.3 },
  { "NOFZ", 57.61 }, { "RONT", 485.3 }, { "SEFR", 103.32 }, { "LIBG", 12.06 }, { "LEBD", 334.29 },
  { "VURP", 301.4 }, { "BODK", 138.17 }, { "GIK", 486.45 }, { "FAZP", 112.84 }, { "BILD", 239.95 },
  { "FUTB", 49.97 }, { "DOP", 25.63 }, { "GIR", 120.24 }, { "RULR", 361.74 }, { "DISU", 323.39 },
}

-- symbol -> opening price, for lookups.
M.open = {}
for _, s in ipairs(M.list) do M.open[s[1]] = s[2] end

return M
