# The coordinator as an image. Tokens must come from the environment: on 0.0.0.0 the server
# refuses to start without them.
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production \
    OWOKX_HOST=0.0.0.0 \
    OWOKX_PORT=8787 \
    OWOKX_DATABASE_URL=sqlite:/data/swarm.db

# better-sqlite3 builds from source when no prebuilt binary can be fetched.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*

COPY package.json package-lock.json ./
RUN npm ci --omit=dev

COPY bin ./bin
COPY src ./src
COPY scripts ./scripts
COPY tsconfig.json ./
# The server runs bundled, on node alone (scripts/bundle.ts): tsx's loader costs ~65 MB.
RUN npm run build

RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8787/ready').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"

USER node
CMD ["node", "dist/swarmctl.js", "serve"]
