-- Argo CD health check for CUPCAKE's DirectUpdate (cupcake.ricardomolendijk.com/v1).
-- Phases (status.phase): Pending, InProgress, Succeeded, Failed, RequiresAttention,
-- Paused, Cancelled. The controller also writes the conditions Ready, Progressing and
-- Degraded; Degraded=True wins over the phase. docs/gitops-tools.md explains the mapping.
local hs = {}

local function detail(prefix, st)
  local parts = {}
  if st.progress ~= nil and st.progress ~= "" then
    table.insert(parts, st.progress .. " nodes")
  end
  if st.message ~= nil and st.message ~= "" then
    table.insert(parts, st.message)
  end
  if #parts == 0 then
    return prefix
  end
  return prefix .. ": " .. table.concat(parts, "; ")
end

local st = obj.status
if st == nil or st.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the CUPCAKE controller to pick up the DirectUpdate"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and st.observedGeneration ~= nil and st.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the CUPCAKE controller to observe generation " .. generation
  return hs
end

if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type == "Degraded" and c.status == "True" then
      hs.status = "Degraded"
      hs.message = detail(c.reason or st.phase, st)
      return hs
    end
  end
end

local phase = st.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "InProgress" or phase == "Pending" then
  hs.status = "Progressing"
elseif phase == "Paused" then
  hs.status = "Suspended"
elseif phase == "Failed" or phase == "RequiresAttention" or phase == "Cancelled" then
  hs.status = "Degraded"
else
  hs.status = "Unknown"
  hs.message = "Unknown DirectUpdate phase " .. phase
  return hs
end
hs.message = detail(phase, st)
return hs
