# ferry-control: compile the TS service and the FFI addons, ship node_modules + build.
FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY proto/ proto/
COPY control/ control/
RUN node proto/gen.mjs --ts control/src/gen/proto.ts && npx tsc -p tsconfig.json \
    && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /src/node_modules node_modules/
COPY --from=build /src/build build/
COPY --from=build /src/control/bin control/bin/
COPY package.json ./
USER root
ENTRYPOINT ["control/bin/ferry-control.js"]
