// The app's own resources, in its resource group: identity, host storage, monitoring, network, Function App.
// Nothing here holds or hands out a key: storage, Application Insights and Log Analytics accept Entra ID only.
param location string
param tags object = {}

@description('Seeds the resource names (main.bicep).')
param resourceToken string

param vnetEnabled bool = false
param captureRequestsQueue string
param captureResultsQueue string

@description('CAPTURE_EXPORT_ACCOUNTS: comma-separated export account resource ids (empty: VHD export disabled).')
param exportAccounts string = ''

@description('CAPTURE_BUILD_RESOURCE_GROUP: the group captureMode clone builds its copy of the VM in.')
param buildResourceGroup string = ''

@description('CAPTURE_BUILD_SUBNET_ID: the subnet id of the clone\'s network interface (empty: clone captures refused in preflight).')
param buildSubnetId string = ''

@description('JANITOR_SCOPES: comma-separated resource group ids the janitor scans.')
param janitorScopes string

param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048

@description('Object id of a user who may read the host storage for debugging. Empty: nobody.')
param principalId string = ''

// The Python version of the README and pyproject.toml (tests/infra checks the README's).
var pythonVersion = '3.11'
var appName = 'func-imgpipe-${resourceToken}'
var storageName = take('stimgpipe${resourceToken}', 24)
var packageContainer = 'app-package'
var storageSuffix = environment().suffixes.storage

// Built-in roles (ids are the same in every tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var hostStorageRoles = [storageBlobDataOwner, storageQueueDataContributor, storageTableDataContributor]

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-imgpipe-${resourceToken}'
  location: location
  tags: tags
}

// --- Monitoring -------------------------------------------------------------------------------------

resource logs 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: 'log-imgpipe-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
    features: { disableLocalAuth: true }
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-imgpipe-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource insightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// --- Host storage: Durable task hub, queue trigger, deployment package --------------------------------

module network 'network.bicep' = if (vnetEnabled) {
  name: 'network'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  tags: tags
  kind: 'StorageV2'
  // Each skip below is a decision of this template, with its reason (tests/infra runs checkov).
  //checkov:skip=CKV_AZURE_35: without vnetEnabled, Flex Consumption reaches its host storage over the public endpoint, so the default rule must allow; access is by Entra ID only (allowSharedKeyAccess false). With vnetEnabled the rule is Deny and public access is disabled
  //checkov:skip=CKV_AZURE_206: host state of one app in one region (task hub, queues, package): zone or geo redundancy is a per-region cost decision left to the operator
  //checkov:skip=CKV_AZURE_43: the name is computed (take('stimgpipe<uniqueString>', 24)): lowercase letters and digits, at most 24 characters; checkov cannot evaluate it
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Child resources are declared with `parent` (not nested): pycep-parser, and so checkov, keep only the last
// of several nested siblings.
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainerResource 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: packageContainer
  properties: { publicAccess: 'None' }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource requestsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: captureRequestsQueue
}

resource resultsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: captureResultsQueue
}

resource storagePrivateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for service in ['blob', 'queue', 'table']: if (vnetEnabled) {
  name: 'pe-${storage.name}-${service}'
  location: location
  tags: tags
  properties: {
    subnet: { id: vnetEnabled ? network.outputs.endpointSubnetId : '' }
    privateLinkServiceConnections: [
      {
        name: 'pl-${service}'
        properties: {
          privateLinkServiceId: storage.id
          groupIds: [service]
        }
      }
    ]
  }
}]

resource storageDnsGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (service, i) in ['blob', 'queue', 'table']: if (vnetEnabled) {
  parent: storagePrivateEndpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: service
        properties: {
          privateDnsZoneId: resourceId('Microsoft.Network/privateDnsZones', 'privatelink.${service}.${storageSuffix}')
        }
      }
    ]
  }
  dependsOn: [network]
}]

resource hostStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in hostStorageRoles: {
  name: guid(storage.id, identity.id, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource debugStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in hostStorageRoles: if (!empty(principalId)) {
  name: guid(storage.id, principalId, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: principalId
    principalType: 'User'
  }
}]

// --- The Function App ---------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-imgpipe-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  //checkov:skip=CKV_AZURE_225: zone redundancy of a Flex Consumption plan is offered in some regions only; an operator who needs it sets zoneRedundant where the region has it
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// What the app reads (shared/settings.py, shared/queues.py). Settings left at the app's defaults are listed
// in infra/README.md; tests/infra checks both lists against shared/settings.py.
var appSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  AzureWebJobsStorage__blobServiceUri: 'https://${storage.name}.blob.${storageSuffix}'
  AzureWebJobsStorage__queueServiceUri: 'https://${storage.name}.queue.${storageSuffix}'
  AzureWebJobsStorage__tableServiceUri: 'https://${storage.name}.table.${storageSuffix}'
  APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  AZURE_CLIENT_ID: identity.properties.clientId
  AZURE_ARM_ENDPOINT: environment().resourceManager
  AZURE_ARM_AUDIENCE: environment().resourceManager
  AZURE_AUTHORITY_HOST: environment().authentication.loginEndpoint
  AZURE_STORAGE_SUFFIX: storageSuffix
  CAPTURE_EXPORT_ACCOUNTS: exportAccounts
  CAPTURE_BUILD_RESOURCE_GROUP: buildResourceGroup
  CAPTURE_BUILD_SUBNET_ID: buildSubnetId
  CAPTURE_REQUESTS_QUEUE: captureRequestsQueue
  CAPTURE_RESULTS_QUEUE: captureResultsQueue
  JANITOR_SCOPES: janitorScopes
  NOTICE_ALLOW_LOOPBACK_WEBHOOKS: 'false'
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  //checkov:skip=CKV_AZURE_222: the HTTP API and the Event Grid webhook are called from outside (function keys); README: put Entra ID authentication or API Management in front for production
  //checkov:skip=CKV_AZURE_17: callers authenticate with function keys, not client certificates
  //checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per trigger; Durable state lives in storage, so no instance needs to stay up for failover
  //checkov:skip=CKV_AZURE_213: the app has no health endpoint (every HTTP function needs a key); the Functions host restarts failed workers itself
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: vnetEnabled ? network.outputs.appSubnetId : null
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${storage.name}.blob.${storageSuffix}/${packageContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
  dependsOn: [hostStorageAccess, storageDnsGroups]
}

// checkov reads config 'appsettings' as if it were config 'web' (the site's web configuration, checked on
// the site above); the skips inside say which property each check looks for.
resource siteSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13: authentication: not a property of application settings
  //checkov:skip=CKV_AZURE_63: HTTP logging: not a property of application settings
  //checkov:skip=CKV_AZURE_65: detailed error messages: not a property of application settings
  parent: site
  //checkov:skip=CKV_AZURE_66: failed request tracing: not a property of application settings
  //checkov:skip=CKV_AZURE_80: .NET Framework version: not a property of application settings
  //checkov:skip=CKV_AZURE_88: Azure Files mounts: not a property of application settings
  name: 'appsettings'
  //checkov:skip=CKV_AZURE_222: public network access: not a property of application settings
  properties: appSettings
}

// Deployment by Entra ID only: no publishing credentials.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: { allow: false }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: { allow: false }
}

output functionAppName string = site.name
output defaultHostName string = site.properties.defaultHostName
output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output storageAccountName string = storage.name
output applicationInsightsName string = insights.name
